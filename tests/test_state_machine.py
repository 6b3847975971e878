"""Property test (issue 6): random sequences of ledger operations against an in-memory model.

A Hypothesis RuleBasedStateMachine drives the in-process app (TestClient) through create,
attribute, review, link, merge, edit with ETags (stale ones must be 412), delete and
search, on a fresh database per run (SQLite, or PostgreSQL with
CLAIMLEDGER_TEST_DATABASE_URL). After every step it checks, for every claim it knows:

- the claim is what the model says (status, version, text, merge target, attributions,
  links), and its version never went down;
- its history has one event per version, and the claim read `?as_of=now` (replayed from
  the last event's snapshot) equals the claim read now;
- searching a claim's unique token finds exactly the claims the model says carry it;
- no row anywhere is orphaned and the search index matches the claims
  (tests/reliability_support.py: integrity_report).

State machines cannot take pytest fixtures, so the test function hands the machine a
factory that builds a fresh database, app and client per run.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.config import Settings
from app.db import Database
from app.domain import keys
from app.main import create_app
from app.models import Role
from tests.reliability_support import FULL, claim_text, integrity_report

MAX_EXAMPLES = 60 if FULL else 10
STEPS = 50 if FULL else 25
MAX_LIVE_CLAIMS = 8 if FULL else 5  # few claims, so links, merges and deletes meet
FULL_CHECK_EVERY = 4  # steps; in between only the claims a step may have changed
INTEGRITY_EVERY = 1 if FULL else 4  # steps between database-wide orphan checks

SOURCES = ["Government of Ukraine", "ISW", "OHCHR", "BelTA"]
STANCES = ["asserts", "supports", "disputes", "denies", "reports"]
STATUSES = ["unverified", "in_review", "true", "mostly_false", "misleading"]
LINK_KINDS = ["supports", "contradicts", "related"]
ANY_VERSION = {"If-Match": "*"}  # reviews, links, merges and deletes need If-Match
TOPICS = ["belarus", "casualties", "troops"]


class Ledger:
    """A fresh database, the app on it, a client and a key per role."""

    def __init__(self, database_url: str):
        self.settings = Settings(database_url=database_url, key_cache_seconds=0, threads=8,
                                 rate_limit_per_minute=1_000_000)
        self.db = Database(self.settings)
        self.client = TestClient(create_app(self.settings, database=self.db),
                                 raise_server_exceptions=False)
        self.client.__enter__()
        with self.db.write_session() as session:
            self.secrets = {role.value: keys.create_key(session, name=f"sm-{role}", role=role,
                                                        actor="tests").secret for role in Role}
            session.commit()

    def headers(self, role: str = "admin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}", **extra}

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.db.dispose()


@dataclass
class ModelClaim:
    token: str
    text: str
    version: int = 1
    status: str = "unverified"
    duplicate_of: str | None = None
    deleted: bool = False
    topics: set[str] = field(default_factory=set)
    # (source name, stance): what makes two attributions the same (no quote or URL here)
    attributions: list[tuple[str, str]] = field(default_factory=list)


class LedgerMachine(RuleBasedStateMachine):
    new_ledger: Any = None  # set by the test: () -> Ledger

    claims = Bundle("claims")

    def __init__(self) -> None:
        super().__init__()
        self.ledger: Ledger = type(self).new_ledger()
        self.model: dict[str, ModelClaim] = {}
        self.links: dict[str, tuple[str, str, str]] = {}  # link id -> (from, to, kind)
        self.tokens: list[str] = []  # every token ever used, current or replaced
        self.seen_versions: dict[str, int] = {}
        self.dirty: set[str] = set()  # claims the last step may have changed
        self.steps = 0
        self.rng = random.Random(0)
        self.serial = 0

    def teardown(self) -> None:
        """Check every claim and the whole database once more at the end of the run."""
        try:
            if self.model:
                self._check_claims(sorted(self.model))
                assert integrity_report(self.ledger.db.engine) == {}
        finally:
            self.ledger.close()

    # --- helpers ----------------------------------------------------------------------

    def _token(self) -> str:
        self.serial += 1
        token = f"tok{self.rng.randrange(10**6):06d}n{self.serial}"
        self.tokens.append(token)
        return token

    def _text(self, token: str) -> str:
        return claim_text(self.rng, token, words=5)

    def _live(self, claim_id: str) -> bool:
        return not self.model[claim_id].deleted

    def _expect(self, response, status: int) -> dict[str, Any]:
        assert response.status_code == status, (
            f"{response.request.method} {response.request.url.path}: expected {status}, got "
            f"{response.status_code} {response.text[:500]}")
        if status >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
        return response.json() if response.content else {}

    def _refusal(self, claim_id: str) -> int | None:
        """404 for a deleted claim, 409 for a merged one: what a change of it gets."""
        claim = self.model[claim_id]
        if claim.deleted:
            return 404
        if claim.duplicate_of is not None:
            return 409
        return None

    # --- rules ------------------------------------------------------------------------

    @initialize(target=claims)
    def first_claims(self) -> Any:
        return multiple(*(self._create(topics=[], source=None) for _ in range(3)))

    @precondition(lambda self: sum(not c.deleted for c in self.model.values())
                  < MAX_LIVE_CLAIMS)
    @rule(target=claims, topics=st.lists(st.sampled_from(TOPICS), max_size=2),
          source=st.none() | st.sampled_from(SOURCES))
    def create(self, topics: list[str], source: str | None) -> str:
        return self._create(topics=topics, source=source)

    def _create(self, *, topics: list[str], source: str | None) -> str:
        token = self._token()
        text = self._text(token)
        body: dict[str, Any] = {"text": text, "topics": topics}
        if source:
            body["attributions"] = [{"source": source, "stance": "asserts"}]
        created = self._expect(self.ledger.client.post(
            "/v1/claims", json=body, headers=self.ledger.headers("ingester")), 201)
        self.model[created["id"]] = ModelClaim(
            token=token, text=text, topics=set(topics),
            attributions=[(source, "asserts")] if source else [])
        self.dirty.add(created["id"])
        return created["id"]

    @rule(claim_id=claims, source=st.sampled_from(SOURCES), stance=st.sampled_from(STANCES))
    def attribute(self, claim_id: str, source: str, stance: str) -> None:
        response = self.ledger.client.post(
            f"/v1/claims/{claim_id}/attributions", json={"source": source, "stance": stance},
            headers=self.ledger.headers("ingester"))
        self.dirty.add(claim_id)
        refused = self._refusal(claim_id)
        if refused:
            self._expect(response, refused)
            return
        self._expect(response, 201)
        claim = self.model[claim_id]
        claim.attributions.append((source, stance))
        claim.version += 1

    @rule(claim_id=claims, status=st.sampled_from(STATUSES))
    def review(self, claim_id: str, status: str) -> None:
        response = self.ledger.client.post(
            f"/v1/claims/{claim_id}/reviews",
            json={"status": status, "rationale": "compared with the OHCHR report"},
            headers=self.ledger.headers("checker", **ANY_VERSION))
        self.dirty.add(claim_id)
        refused = self._refusal(claim_id)
        claim = self.model[claim_id]
        if refused == 404:
            self._expect(response, 404)
        elif status == "unverified":  # the request's own rule, before the claim's state
            self._expect(response, 422)
        elif refused:
            self._expect(response, refused)
        elif status == claim.status:
            self._expect(response, 422)
        else:
            self._expect(response, 201)
            claim.status = status
            claim.version += 1

    @rule(from_id=claims, to_id=claims, kind=st.sampled_from(LINK_KINDS))
    def link(self, from_id: str, to_id: str, kind: str) -> None:
        response = self.ledger.client.post(
            f"/v1/claims/{from_id}/links", json={"target_id": to_id, "kind": kind},
            headers=self.ledger.headers("checker", **ANY_VERSION))
        here, there = self.model[from_id], self.model[to_id]
        self.dirty |= {from_id, to_id}
        if here.deleted:
            self._expect(response, 404)
        elif here.duplicate_of is not None:
            self._expect(response, 409)  # like every other change of a merged claim
        elif from_id == to_id or there.deleted:
            self._expect(response, 422)
        elif there.duplicate_of is not None or (from_id, to_id, kind) in self.links.values():
            self._expect(response, 409)
        else:
            link = self._expect(response, 201)
            self.links[link["id"]] = (from_id, to_id, kind)
            self.model[from_id].version += 1
            self.model[to_id].version += 1

    @rule(from_id=claims, to_id=claims, kind=st.sampled_from(LINK_KINDS))
    def relate(self, from_id: str, to_id: str, kind: str) -> None:
        """`link` once more: merges and deletes must meet links, so links come twice as often."""
        self.link(from_id, to_id, kind)

    @rule(claim_id=claims, duplicate_id=claims)
    def merge(self, claim_id: str, duplicate_id: str) -> None:
        response = self.ledger.client.post(
            f"/v1/claims/{claim_id}/merge", json={"duplicate_id": duplicate_id},
            headers=self.ledger.headers("checker", **ANY_VERSION))
        claim, duplicate = self.model[claim_id], self.model[duplicate_id]
        self.dirty |= {claim_id, duplicate_id}
        if claim.deleted:
            self._expect(response, 404)
        elif claim_id == duplicate_id:
            self._expect(response, 422)
        elif claim.duplicate_of is not None:
            self._expect(response, 409)
        elif duplicate.deleted:
            self._expect(response, 422)
        elif duplicate.duplicate_of is not None:
            self._expect(response, 409)
        else:
            self._expect(response, 200)
            for att in duplicate.attributions:
                if att not in claim.attributions:
                    claim.attributions.append(att)
            duplicate.attributions = []
            claim.topics |= duplicate.topics
            kept = {lk for lk in self.links.values() if claim_id in lk[:2]}
            for link_id, (src, dst, kind) in list(self.links.items()):
                if duplicate_id not in (src, dst):
                    continue
                other = dst if src == duplicate_id else src
                src = claim_id if src == duplicate_id else src
                dst = claim_id if dst == duplicate_id else dst
                if src == dst or (src, dst, kind) in kept:
                    del self.links[link_id]
                else:
                    kept.add((src, dst, kind))
                    self.links[link_id] = (src, dst, kind)
                if other != claim_id:  # a third claim's link moved or went: its new version
                    self.model[other].version += 1
                    self.dirty.add(other)
            duplicate.duplicate_of = claim_id
            claim.version += 1
            duplicate.version += 1

    @rule(claim_id=claims, stale=st.sampled_from([None, -1, 1]))
    def edit(self, claim_id: str, stale: int | None) -> None:
        claim = self.model[claim_id]
        version = claim.version + (stale or 0)
        token = self._token()
        text = self._text(token)
        response = self.ledger.client.patch(
            f"/v1/claims/{claim_id}", json={"text": text},
            headers=self.ledger.headers("checker", **{"If-Match": f'"{version}"'}))
        self.dirty.add(claim_id)
        refused = self._refusal(claim_id)
        if refused:
            self._expect(response, refused)
        elif stale:
            self._expect(response, 412)
        else:
            body = self._expect(response, 200)
            claim.token, claim.text = token, text
            claim.version += 1
            if claim.status not in ("unverified", "in_review"):  # new text reopens a verdict
                claim.status = "in_review"
                claim.version += 1
            assert body["status"] == claim.status
            assert response.headers["ETag"] == f'"{claim.version}"' == f'"{body["version"]}"'

    @rule(claim_id=claims)
    def edit_without_etag(self, claim_id: str) -> None:
        response = self.ledger.client.patch(f"/v1/claims/{claim_id}", json={"text": "x y z"},
                                            headers=self.ledger.headers("checker"))
        self._expect(response, 428)

    @rule(claim_id=claims)
    def delete(self, claim_id: str) -> None:
        response = self.ledger.client.delete(f"/v1/claims/{claim_id}",
                                             headers=self.ledger.headers("admin", **ANY_VERSION))
        claim = self.model[claim_id]
        self.dirty.add(claim_id)
        if claim.deleted:
            self._expect(response, 404)
        elif any(c.duplicate_of == claim_id and not c.deleted for c in self.model.values()):
            self._expect(response, 409)
        else:
            self._expect(response, 204)
            claim.deleted = True
            for link_id, (src, dst, _) in list(self.links.items()):
                if claim_id in (src, dst):  # the other end loses the link: a new version
                    other = dst if src == claim_id else src
                    self.model[other].version += 1
                    self.dirty.add(other)
                    del self.links[link_id]

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def search(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(self.tokens), label="token")
        for include_merged in (False, True):
            expected = {cid for cid, c in self.model.items() if c.token == token
                        and not c.deleted and (include_merged or c.duplicate_of is None)}
            page = self._expect(self.ledger.client.get(
                "/v1/claims", params={"q": token, "include_merged": include_merged},
                headers=self.ledger.headers("reader")), 200)
            assert {c["id"] for c in page["items"]} == expected, (token, include_merged)

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def every_claim_is_as_the_model_says(self) -> None:
        self.steps += 1
        self._check_claims(sorted(self.model if self.steps % FULL_CHECK_EVERY == 0
                                  else self.dirty))
        self.dirty.clear()

    def _check_claims(self, claim_ids: list[str]) -> None:
        client, reader = self.ledger.client, self.ledger.headers("reader")
        now = (datetime.now(UTC) + timedelta(milliseconds=1)).isoformat()
        for claim_id in claim_ids:
            claim = self.model[claim_id]
            response = client.get(f"/v1/claims/{claim_id}", headers=reader)
            if claim.deleted:
                self._expect(response, 404)
                continue
            got = self._expect(response, 200)
            assert got["version"] >= self.seen_versions.get(claim_id, 1), "version went down"
            self.seen_versions[claim_id] = got["version"]
            assert response.headers["ETag"] == f'"{got["version"]}"'
            expected = {
                "version": claim.version, "status": claim.status, "text": claim.text,
                "duplicate_of": claim.duplicate_of, "topics": sorted(claim.topics),
                "attributions": sorted(claim.attributions),
                "links": sorted(lid for lid, ends in self.links.items() if claim_id in ends[:2]),
            }
            actual = {
                "version": got["version"], "status": got["status"], "text": got["text"],
                "duplicate_of": got["duplicate_of"], "topics": sorted(got["topics"]),
                "attributions": sorted((a["source"]["name"], a["stance"])
                                       for a in got["attributions"]),
                "links": sorted(lk["id"] for lk in got["links"]),
            }
            assert actual == expected, claim_id
            history = self._expect(client.get(f"/v1/claims/{claim_id}/history",
                                              params={"limit": 200}, headers=reader), 200)
            assert len(history["items"]) == got["version"], "one event per version"
            replayed = self._expect(client.get(f"/v1/claims/{claim_id}",
                                               params={"as_of": now}, headers=reader), 200)
            assert replayed == got, f"{claim_id} as_of now differs from now"

    @invariant()
    def nothing_is_orphaned(self) -> None:
        if self.steps % INTEGRITY_EVERY == 0:
            assert integrity_report(self.ledger.db.engine) == {}


def test_ledger_state_machine(databases) -> None:
    """Random operation sequences keep the ledger, its history and its search consistent."""
    print(f"\nstate machine ({'full' if FULL else 'short'}, {databases.kind}): "
          f"{MAX_EXAMPLES} runs of up to {STEPS} steps, a fresh database per run")
    machine = type("Machine", (LedgerMachine,), {"new_ledger": lambda: Ledger(databases.fresh())})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True))

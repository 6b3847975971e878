"""The desk in a real browser: Debian's Chromium driven by Playwright, against the real server.

One live server (on the demo ledger) and one browser serve the whole module; each test
gets its own browser context (its own cookies). Elements are found by label, role and
visible text, as a person or a screen reader would. Every test fails on a console error
or an uncaught page error, unless it says why one is expected.

Set CLAIMLEDGER_DESK_SCREENSHOTS=docs/screenshots to refresh the README's screenshots.
"""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.db import Database
from app.demo import load_demo
from app.desk import security
from app.domain.pagination import encode_cursor
from tests.conftest import mint_role_keys
from tests.live_server import ROOT, run_live_server

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=10_000)

LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
OHCHR = "Office of the High Commissioner for Human Rights"  # in the demo ledger


class Desk:
    """The live server, its keys, and an API client to set the scene with."""

    def __init__(self, url: str, secrets: dict[str, str], shots: Path):
        self.url, self.secrets, self.shots = url, secrets, shots
        self.api = httpx.Client(base_url=url, timeout=10)

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    def claim(self, text: str, **fields: Any) -> dict[str, Any]:
        response = self.api.post("/v1/claims", json={"text": text, **fields},
                                 headers=self.headers("checker"))
        assert response.status_code == 201, response.text
        return response.json()

    def read(self, claim_id: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/claims/{claim_id}", headers=self.headers("reader"))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def desk(databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    settings = Settings(database_url=databases.fresh(), key_cache_seconds=0, threads=16,
                        rate_limit_per_minute=1_000_000)
    database = Database(settings)
    try:
        with database.write_session() as session:
            load_demo(session)
            session.commit()
    finally:
        database.dispose()
    secrets = mint_role_keys(settings, "desk")
    tmp = tmp_path_factory.mktemp("desk")
    shots = Path(os.environ.get("CLAIMLEDGER_DESK_SCREENSHOTS") or tmp / "screenshots")
    if not shots.is_absolute():
        shots = ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    with run_live_server(settings, tmp / "uvicorn.log") as server:
        desk = Desk(server.url, secrets, shots)
        yield desk
        desk.api.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


class Page:
    """A browser page in a context of its own, collecting console and page errors."""

    def __init__(self, browser: Any, desk: Desk, viewport: dict[str, int]):
        self.context = browser.new_context(viewport=viewport, base_url=desk.url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def pages(browser, desk) -> Iterator[Any]:
    """pages() -> a new page (laptop-sized unless told); no console error in any by the end."""
    opened: list[Page] = []

    def new(viewport: dict[str, int] = LAPTOP) -> Page:
        opened.append(Page(browser, desk, viewport))
        return opened[-1]

    yield new
    errors = [e for p in opened for e in p.errors]
    for p in opened:
        p.close()
    assert errors == [], f"console or page errors: {errors}"


def sign_in(page: Any, desk: Desk, role: str = "checker") -> None:
    page.goto("/sign-in")
    page.get_by_label("API key").fill(desk.secrets[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Claims", level=1)).to_be_visible()


def shot(page: Any, desk: Desk, name: str) -> None:
    page.screenshot(path=str(desk.shots / f"{name}.png"), full_page=True)


def test_desk_sign_in_search_filter_and_open_claim(pages, desk):
    page = pages().page
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # signed out: sign in
    shot(page, desk, "sign-in")
    sign_in(page, desk)
    assert page.evaluate("document.cookie") == ""  # HttpOnly: page scripts cannot read the key
    results = page.get_by_role("region", name="Results")
    expect(results.get_by_role("link")).not_to_have_count(0)
    shot(page, desk, "claims")

    page.get_by_label("Search").fill("civilians killed Kyiv")
    page.get_by_role("button", name="Search").click()
    target = "441 civilians were killed by Russian forces"
    expect(results.get_by_role("link", name=re.compile(target))).to_be_visible()
    expect(results.get_by_role("link", name=re.compile("stationed in Belarus"))).to_have_count(0)

    page.get_by_label("Search").fill("")
    page.get_by_label("Contested").select_option(label="Contested only")
    page.get_by_label("Status").select_option(label="Mostly false")
    page.get_by_role("button", name="Search").click()
    contested = "Russia does not intentionally target civilians."
    expect(results.get_by_role("link")).to_have_count(1)
    expect(results.get_by_role("link", name=contested)).to_be_visible()
    expect(results).to_contain_text("Contested")

    results.get_by_role("link", name=contested).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(contested)
    sources = page.get_by_role("region", name="Sources")
    expect(sources.get_by_role("link", name="Government of Russia")).to_be_visible()
    expect(sources).to_contain_text("disputes")
    expect(page.get_by_role("region", name="History")).to_contain_text("claim.created")
    shot(page, desk, "claim")


def test_desk_verdict_needs_rationale_then_is_recorded(pages, desk):
    claim = desk.claim("Belarus has closed every border crossing with Ukraine this week.")
    page = pages().page
    sign_in(page, desk)
    page.goto(f"/claims/{claim['id']}")
    page.get_by_label("Status", exact=True).select_option(label="False")
    page.get_by_label("Evidence URLs (one a line)").fill("https://example.org/border")
    page.get_by_role("button", name="Record status").click()
    rationale = page.get_by_label("Rationale")
    expect(page.get_by_text("a verdict (False) needs a rationale")).to_be_visible()
    expect(rationale).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Evidence URLs (one a line)")).to_have_value(
        "https://example.org/border")  # what was typed is kept
    assert desk.read(claim["id"])["status"] == "unverified"

    rationale.fill("Border guards of both countries report the crossings open.")
    page.get_by_role("button", name="Record status").click()
    expect(page.get_by_text("The status is recorded.")).to_be_visible()
    details = page.get_by_role("region", name=re.compile("Belarus has closed"))
    expect(details.get_by_text("False", exact=True)).to_be_visible()
    assert desk.read(claim["id"])["status"] == "false"


def test_desk_second_browser_change_arrives_live(pages, desk):
    claim = desk.claim("Russia has moved 20 fighter jets to Belarusian airfields.")
    watcher, worker = pages().page, pages().page
    sign_in(watcher, desk, "reader")
    sign_in(worker, desk, "checker")
    watcher.goto("/")
    watcher.evaluate("window.stillTheSamePage = true")
    watcher.goto(f"/claims/{claim['id']}")
    watcher.evaluate("window.stillTheSamePage = true")
    details = watcher.get_by_role("region", name=re.compile("fighter jets"))
    expect(details.get_by_text("Unverified", exact=True)).to_be_visible()

    worker.goto(f"/claims/{claim['id']}")
    worker.get_by_label("Status", exact=True).select_option(label="In review")
    worker.get_by_role("button", name="Record status").click()
    expect(worker.get_by_text("The status is recorded.")).to_be_visible()

    expect(details.get_by_text("In review", exact=True)).to_be_visible(timeout=8_000)
    expect(watcher.get_by_role("status").filter(has_text="review.created")).to_be_visible()
    assert watcher.evaluate("window.stillTheSamePage") is True  # no reload

    watcher.goto("/")
    watcher.evaluate("window.stillTheSamePage = true")
    worker.get_by_role("link", name="New claim").click()
    worker.get_by_label("Claim text").fill("Belarus has reopened its airspace to Russian drones.")
    worker.get_by_role("button", name="Register claim").click()
    expect(worker.get_by_text("The claim is registered.")).to_be_visible()
    results = watcher.get_by_role("region", name="Results")
    expect(results.get_by_role("link", name=re.compile("reopened its airspace"))).to_be_visible(
        timeout=8_000)
    assert watcher.evaluate("window.stillTheSamePage") is True


def test_desk_events_resume_from_last_event_id(desk):
    first = desk.claim("Minsk has announced snap exercises near Brest.")
    second = desk.claim("Minsk has extended the snap exercises near Brest by a week.")
    history = desk.api.get(f"/v1/claims/{first['id']}/history", headers=desk.headers()).json()
    after_first = encode_cursor(history["items"][-1]["id"])
    with desk.api.stream("GET", "/desk/events", headers={"Last-Event-ID": after_first},
                         cookies={security.COOKIE: desk.secrets["reader"]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        data = next(line for line in response.iter_lines() if line.startswith("data:"))
    event = json.loads(data.removeprefix("data:"))
    assert (event["action"], event["claim_id"]) == ("claim.created", second["id"])


def test_desk_etag_conflict_keeps_both_versions(pages, desk):
    claim = desk.claim("Belarus has mobilised 100,000 reservists.")
    page = pages().page
    sign_in(page, desk)
    page.goto(f"/claims/{claim['id']}")
    mine = "Belarus has mobilised 10,000 reservists, according to its defence ministry."
    page.get_by_label("Claim text").fill(mine)

    theirs = "Belarus has called up 100,000 reservists for exercises."
    response = desk.api.patch(f"/v1/claims/{claim['id']}", json={"text": theirs},
                              headers={**desk.headers("checker"), "If-Match": '"1"'})
    assert response.status_code == 200, response.text

    page.get_by_role("button", name="Save changes").click()
    conflict = page.get_by_role("alert").filter(has_text="Someone else changed this claim")
    expect(conflict).to_be_visible()
    expect(conflict).to_contain_text(theirs)  # their change, shown
    expect(conflict).to_contain_text(mine)  # what I typed, shown
    expect(page.get_by_label("Claim text")).to_have_value(mine)  # and kept in the form
    assert desk.read(claim["id"])["text"] == theirs
    shot(page, desk, "conflict")

    page.get_by_role("button", name="Save changes").click()  # knowingly, over theirs
    expect(page.get_by_text("Your changes are saved.")).to_be_visible()
    assert desk.read(claim["id"])["text"] == mine


def test_desk_fits_a_phone_without_horizontal_scrolling(pages, desk):
    page = pages(PHONE).page
    sign_in(page, desk)
    claim_link = page.get_by_role("region", name="Results").get_by_role("link").first
    claim_url = claim_link.get_attribute("href")
    page.goto("/sources")
    source_url = page.get_by_role("link", name=OHCHR).get_attribute("href")
    for url in ("/", "/queue", claim_url, "/sources", source_url, "/overview", "/claims/new",
                "/import"):
        page.goto(url)
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{url} scrolls sideways on a phone: {widths}"
    page.goto(claim_url)
    shot(page, desk, "phone-claim")
    page.keyboard.press("Tab")  # the keyboard reaches the skip link first, and shows focus
    focused = page.evaluate("[document.activeElement.textContent, "
                            "getComputedStyle(document.activeElement).outlineStyle]")
    assert focused == ["Skip to content", "solid"]


def test_desk_shows_markup_as_text(pages, desk):
    hostile = ('<img src=x onerror="window.pwned=1"><script>window.pwned=1</script> '
               'Belarus \u202eblocks\u202c the \u200bcrossing')
    claim = desk.claim(hostile, attributions=[{
        "source": "<b>Evil</b> <script>window.pwned=1</script>", "stance": "asserts",
        "quote": "<svg onload=\"window.pwned=1\"></svg>"}])
    page = pages().page
    sign_in(page, desk)
    page.get_by_label("Search").fill("crossing Belarus")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("region", name="Results")).to_contain_text("<script>window.pwned=1")
    page.goto(f"/claims/{claim['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text('<img src=x onerror=')
    expect(page.get_by_role("link", name="<b>Evil</b> <script>")).to_be_visible()
    expect(page.get_by_text('<svg onload="window.pwned=1"></svg>')).to_be_visible()
    assert page.evaluate("window.pwned") is None
    assert page.locator("main script, main img, main b").count() == 0


def test_desk_refuses_forged_cross_site_post(pages, desk):
    claim = desk.claim("Belarusian troops crossed into Ukraine last night.")
    tab = pages()
    page = tab.page
    sign_in(page, desk)
    forged = (f'<!doctype html><html lang="en"><title>Win a prize</title><form method="post" '
              f'action="{desk.url}/claims/{claim["id"]}/verdict"><input name="status" '
              f'value="true"><input name="rationale" value="forged"><input name="version" '
              f'value="1"><button>Claim your prize</button></form></html>')
    page.route("http://prize.example/", lambda route: route.fulfill(
        status=200, content_type="text/html", body=forged))
    page.goto("http://prize.example/")
    page.get_by_role("button", name="Claim your prize").click()
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    assert desk.read(claim["id"])["status"] == "unverified"
    # The refusal itself is the one expected console message (a 403 document).
    tab.errors[:] = [e for e in tab.errors if "403" not in e]


def test_desk_reader_gets_no_edit_forms(pages, desk):
    page = pages().page
    sign_in(page, desk, "reader")
    expect(page.get_by_role("link", name="New claim")).to_have_count(0)
    page.get_by_role("region", name="Results").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Sources")).to_be_visible()
    expect(page.get_by_role("button", name="Record status")).to_have_count(0)
    expect(page.get_by_role("button", name="Save changes")).to_have_count(0)
    expect(page.get_by_role("button", name="Attach source")).to_have_count(0)


def test_desk_queue_assign_overview_and_source(pages, desk):
    claim = desk.claim("Belarus will host Russian nuclear weapons by the summer.")
    page = pages().page
    sign_in(page, desk)
    page.goto(f"/claims/{claim['id']}")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_text("The assignment is saved.")).to_be_visible()
    page.get_by_role("link", name="My queue").click()
    mine = page.get_by_role("region", name=re.compile("Assigned to me"))
    expect(mine.get_by_role("link", name=re.compile("nuclear weapons"))).to_be_visible()
    assert desk.read(claim["id"])["assignee"] == "desk-checker"
    shot(page, desk, "queue")

    page.get_by_role("link", name="Overview").click()
    chart = page.get_by_role("img", name="Claims by status")
    expect(chart).to_be_visible()
    expect(page.get_by_role("table", name="Claims by status")).to_contain_text("Unverified")
    shot(page, desk, "overview")

    page.get_by_role("link", name="Sources").click()
    page.get_by_label("Name or alias starts with").fill("ohchr")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name=OHCHR).click()
    expect(page.get_by_role("img", name=f"Track record of {OHCHR}")).to_be_visible()
    expect(page.get_by_role("region", name="Claims").get_by_role("link")).not_to_have_count(0)
    shot(page, desk, "source")


def test_desk_new_claim_and_import(pages, desk, tmp_path):
    page = pages().page
    sign_in(page, desk)
    page.get_by_role("link", name="New claim").click()
    page.get_by_role("button", name="Register claim").click()  # nothing typed: refused
    text = page.get_by_label("Claim text")
    page.get_by_label("Topics (separated by spaces or commas)").fill("Not A Slug!")
    page.get_by_label("Source name or alias").fill("ISW")
    text.fill("Minsk has ordered 200 new tanks from Russia.")
    page.get_by_role("button", name="Register claim").click()
    expect(page.get_by_label("Topics (separated by spaces or commas)")).to_have_attribute(
        "aria-invalid", "true")
    expect(text).to_have_value("Minsk has ordered 200 new tanks from Russia.")
    page.get_by_label("Topics (separated by spaces or commas)").fill("belarus tanks")
    page.get_by_role("button", name="Register claim").click()
    expect(page.get_by_text("The claim is registered.")).to_be_visible()
    expect(page.get_by_role("region", name="Sources")).to_contain_text(
        "Institute for the Study of War")

    lines = [f'{{"text": "Imported claim number {i} about Belarusian railways."}}'
             for i in range(150)] + ['{"text": ""}']
    file = tmp_path / "claims.ndjson"
    file.write_text("\n".join(lines) + "\n")
    page.get_by_role("link", name="Import").click()
    page.get_by_label("File (NDJSON, JSON or ClaimReview JSON-LD)").set_input_files(str(file))
    page.get_by_role("button", name="Import").click()
    summary = page.get_by_role("status").filter(has_text="Done.")
    expect(summary).to_contain_text("151 of 151 records")
    expect(summary).to_contain_text("150 created")
    expect(summary).to_contain_text("1 failed")
    expect(page.get_by_label("Records sent")).to_have_attribute("value", "151")
    imported = page.get_by_role("region", name="Imported claims")
    expect(imported.get_by_role("link")).to_have_count(20)
    expect(imported.get_by_role("link", name=re.compile("number 0 about"))).to_be_visible()
    expect(imported).to_contain_text("and 130 more")
    shot(page, desk, "import")

    # The {"items": [...]} object POST /v1/ingest takes is split into batches too.
    file = tmp_path / "claims.json"
    file.write_text(json.dumps({"items": [
        {"text": f"Wrapped claim number {i} about Belarusian bridges."} for i in range(130)]}))
    page.get_by_label("File (NDJSON, JSON or ClaimReview JSON-LD)").set_input_files(str(file))
    page.get_by_role("button", name="Import").click()
    summary = page.get_by_role("status").filter(has_text="Done.")
    expect(summary).to_contain_text("130 of 130 records")
    expect(summary).to_contain_text("130 created")


def test_desk_sign_out_and_revoked_key(pages, desk):
    page = pages().page
    sign_in(page, desk)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/queue")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    created = desk.api.post("/v1/keys", json={"name": "short-lived", "role": "checker"},
                            headers=desk.headers("admin")).json()
    page.goto("/sign-in")
    page.get_by_label("API key").fill(created["secret"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("short-lived (checker)")).to_be_visible()
    revoked = desk.api.delete(f"/v1/keys/{created['id']}", headers=desk.headers("admin"))
    assert revoked.status_code == 204
    page.goto("/queue")
    expect(page.get_by_role("alert")).to_contain_text("no longer valid")
    expect(page.get_by_label("API key")).to_be_visible()


def test_desk_publish_withdraw_and_published_filter(pages, desk):
    text = "Belarus has sold its S-300 batteries to Russia."
    claim = desk.claim(text)
    page = pages().page
    sign_in(page, desk)
    page.goto(f"/claims/{claim['id']}")
    page.get_by_label("Status", exact=True).select_option(label="False")
    page.get_by_label("Rationale").fill("Both ministries of defence deny any sale.")
    page.get_by_role("button", name="Record status").click()
    expect(page.get_by_text("The status is recorded.")).to_be_visible()

    page.get_by_label("Fact-check URL").fill("javascript:alert(1)")  # the browser lets it by
    page.get_by_label("Headline").fill("No, Belarus has not sold its S-300s")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_label("Fact-check URL")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Headline")).to_have_value("No, Belarus has not sold its S-300s")
    page.get_by_label("Fact-check URL").fill("https://factcheck.example/s-300")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("The verdict is published.")).to_be_visible()
    shot(page, desk, "published")

    page.get_by_role("link", name="public page").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("No, Belarus has not sold")
    expect(page.locator("body")).to_contain_text(text)
    page.go_back()

    results = page.get_by_role("region", name="Results")
    for published, count in (("Published", 1), ("Not published", 0)):
        page.goto("/")
        page.get_by_label("Search").fill("sold batteries")
        page.get_by_label("Published").select_option(label=published)
        page.get_by_role("button", name="Search").click()
        expect(results.get_by_role("link", name=text)).to_have_count(count)

    page.goto(f"/claims/{claim['id']}")
    page.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_text("The published verdict is withdrawn")).to_be_visible()
    expect(page.get_by_role("button", name="Withdraw")).to_have_count(0)
    assert desk.api.get(f"/c/{claim['id']}").status_code == 410
    for published, count in (("yes", 0), ("no", 1)):
        page.goto(f"/?published={published}&q=sold+batteries")
        expect(results.get_by_role("link", name=text)).to_have_count(count)


def test_desk_import_claimreview_file_and_the_same_file_twice(pages, desk, tmp_path):
    review = json.loads((ROOT / "tests/data/schemaorg-claimreview.json").read_text())
    text = "Belarus has built a wall along its whole border with Poland."
    review.update(claimReviewed=text, url="https://factcheck.example/belarus-wall")
    other = {**review, "claimReviewed": "Belarus has dug a canal to the Baltic Sea.",
             "url": "https://factcheck.example/belarus-canal"}
    file = tmp_path / "reviews.json"
    file.write_text(json.dumps([review, other]))
    page = pages().page
    sign_in(page, desk)
    page.goto("/import")
    page.get_by_label("File (NDJSON, JSON or ClaimReview JSON-LD)").set_input_files(str(file))
    page.get_by_role("button", name="Import").click()
    summary = page.get_by_role("status").filter(has_text="Done.")
    expect(summary).to_contain_text("2 of 2 records: 2 created")
    imported = page.get_by_role("region", name="Imported claims")
    expect(imported.get_by_role("link")).to_have_count(2)
    expect(imported.get_by_role("link", name=other["claimReviewed"])).to_be_visible()

    page.get_by_role("button", name="Import").click()  # the same file again, from this page
    expect(summary).to_contain_text("0 created")
    expect(summary).to_contain_text("2 replayed")
    found = desk.api.get("/v1/claims", params={"q": "wall border Poland"},
                         headers=desk.headers("reader")).json()["items"]
    assert [c["text"] for c in found] == [text]  # imported once

    imported.get_by_role("link", name=text).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text)
    details = page.get_by_role("region", name=text)
    expect(details.get_by_text("False", exact=True)).to_be_visible()
    expect(details).to_contain_text("https://factcheck.example/belarus-wall")  # published
    expect(page.get_by_role("region", name="Sources")).to_contain_text("Square World Society")


# Every visible text node's colour against the background it is drawn on (the first
# opaque background among its ancestors, semi-transparent ones blended in), as WCAG 2
# computes contrast; SVG text by its fill.
CONTRAST_JS = """
() => {
  const parse = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a), g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a), a: 1});
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let colour = {r: 255, g: 255, b: 255, a: 1};  // the canvas
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const el = text.parentElement;
    if (!text.textContent.trim() || seen.has(el)
        || el.closest("title, desc, script, style, option")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility !== "visible" || style.display === "none" || !box.width || !box.height
        || el.closest("[hidden]")) continue;
    const svg = el instanceof SVGElement;
    const fg = parse(svg ? style.fill : style.color);
    if (!fg) continue;
    const bg = background(el);
    const [a, b] = [lum(over(fg, bg)), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    out.push({text: text.textContent.trim().slice(0, 40), tag: el.tagName, ratio: ratio,
              needed: large ? 3 : 4.5, colour: svg ? style.fill : style.color,
              background: `rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)})`});
  }
  return out;
}
"""


def test_desk_text_contrast_meets_wcag_aa(pages, desk):
    claim = desk.claim("Belarus has ordered a census of its reservists.", attributions=[
        {"source": "BelTA", "stance": "reports", "quote": "A census is ordered."}])
    other = desk.claim("Belarus has ordered a second census of its reservists.")
    tab = pages()
    page = tab.page
    sign_in(page, desk)
    page.goto("/sources")
    source_url = page.get_by_role("link", name=OHCHR).get_attribute("href")
    checked: dict[str, int] = {}
    failures: list[str] = []

    def measure(name: str) -> None:
        found = page.evaluate(CONTRAST_JS)
        checked[name] = len(found)
        failures.extend(f"{name}: {f['tag']} {f['text']!r} {f['colour']} on {f['background']}"
                        f" is {f['ratio']:.2f}:1, needs {f['needed']}:1"
                        for f in found if f["ratio"] < f["needed"])

    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for url in ("/sign-in", "/", "/?status=bogus", "/queue", f"/claims/{claim['id']}",
                    f"/claims/{claim['id']}?saved=edit", "/sources", source_url, "/overview",
                    "/claims/new", "/import"):
            page.goto(url)
            measure(f"{scheme} {url}")
        page.goto(f"/claims/{claim['id']}")  # a form's problem, a notice and a conflict
        page.get_by_label("Status", exact=True).select_option(label="False")
        page.get_by_role("button", name="Record status").click()
        expect(page.get_by_text("needs a rationale")).to_be_visible()
        measure(f"{scheme} claim with an error")
        page.goto(f"/claims/{other['id']}")
        version = desk.read(other["id"])["version"]
        response = desk.api.patch(f"/v1/claims/{other['id']}", json={
            "topics": [f"census-{scheme}"]}, headers={**desk.headers("checker"),
                                                       "If-Match": f'"{version}"'})
        assert response.status_code == 200, response.text
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("alert").filter(has_text="Someone else changed")).to_be_visible()
        measure(f"{scheme} conflict")
    assert all(checked.values()), checked  # text was found on every page
    assert failures == [], "\n".join(failures)

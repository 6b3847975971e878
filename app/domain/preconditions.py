"""If-Match as RFC 9110 §13.1.1 has it: `*` or a list of entity tags, compared strongly.

Parsed once per request (app/deps.py), evaluated by the logic that holds the row lock
(check_version), so that a missing claim is still a 404 and a race is still a 412.
"""

import re
from dataclasses import dataclass

from app.errors import BadRequest, PreconditionFailed

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E (obs-text left out: this
# service never issues it). A list may hold empty elements (RFC 9110 §5.6.1).
_TAG = r'(?:W/)?"[\x21\x23-\x7e]*"'
_LIST = re.compile(rf'[ \t,]*{_TAG}(?:[ \t]*,[ \t,]*{_TAG})*[ \t,]*')
_TAGS = re.compile(r'(W/)?"([\x21\x23-\x7e]*)"')
# The tags this service issues: the version, in decimal (deps.etag).
_VERSION = re.compile(r"[1-9][0-9]{0,17}")

# The same grammar for the OpenAPI document (`*` or the list).
IF_MATCH_PATTERN = rf"^(\*|{_LIST.pattern})$"


@dataclass(frozen=True)
class IfMatch:
    """A parsed If-Match: `*`, or the versions its strong tags name."""

    sent: str
    versions: frozenset[int] = frozenset()
    any: bool = False  # `*`: any current representation matches
    weak: bool = False  # it lists a W/ tag, which never matches (strong comparison)

    def matches(self, version: int) -> bool:
        return self.any or version in self.versions

    def refusal(self, version: int, what: str) -> str:
        """The 412's detail when `version` is current and this does not match it."""
        why = " (a weak W/ tag never matches: If-Match compares strongly)" if self.weak else ""
        return (f'{what} is at version {version} (ETag "{version}") and If-Match: {self.sent} '
                f"does not match it{why}; if it changed since you read it, fetch it again and "
                "reapply your change")


def parse_if_match(value: str | None) -> IfMatch | None:
    """None for no header; BadRequest when it is neither `*` nor a list of entity tags."""
    if value is None:
        return None
    text = value.strip(" \t")
    if text == "*":
        return IfMatch(text, any=True)
    if len(text) > 1000 or not _LIST.fullmatch(text):
        raise BadRequest('If-Match must be * or a list of quoted entity tags, like "3" or '
                         f'"3", "4" (the ETag header of what you read); got {value[:200]!r}')
    tags = _TAGS.findall(text)
    versions = frozenset(int(tag) for weak, tag in tags if not weak and _VERSION.fullmatch(tag))
    return IfMatch(text, versions, weak=any(weak for weak, _ in tags))


def check_version(current: int, expected: IfMatch | None, what: str) -> None:
    """412 unless the If-Match condition (None: none sent) matches the current version."""
    if expected is not None and not expected.matches(current):
        raise PreconditionFailed(expected.refusal(current, what))

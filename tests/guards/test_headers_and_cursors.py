"""RateLimit fields against the Structured Fields grammar (RFC 9651 §3.1, §3.1.2) as used
by draft-ietf-httpapi-ratelimit-headers-10 §3 and §4; signed cursors."""

from __future__ import annotations

import contextlib
import re
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import InvalidInput
from bastion.guards.cursors import Cursors, Position
from bastion.guards.ratelimit_headers import Advertised, policy_field, ratelimit_field

# sf-list of items whose bare item is an sf-string and whose parameters are integers.
_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\\"])*"'
_PARAM = r";[a-z*][a-z0-9_.*-]*=-?[0-9]{1,15}"
_ITEM = rf"{_STRING}(?:{_PARAM})*"
SF_LIST = re.compile(rf"^{_ITEM}(?:[ \t]*,[ \t]*{_ITEM})*$")

limits = st.builds(
    Advertised,
    name=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20),
    quota=st.integers(1, 10**6),
    window=st.floats(0.001, 10**6),
    remaining=st.integers(0, 10**6),
    reset=st.floats(0, 10**6),
)


@given(st.lists(limits, min_size=1, max_size=4))
def test_fields_follow_the_structured_field_grammar(advertised: list[Advertised]) -> None:
    policy = policy_field(advertised)
    current = ratelimit_field(advertised)
    assert SF_LIST.match(policy), policy
    assert SF_LIST.match(current), current
    for item in re.findall(r";w=(\d+)", policy):
        assert int(item) >= 1  # §3.1.3: a non-zero window


def test_examples_from_the_draft() -> None:
    advertised = [Advertised("default", 100, 10, 50, 29.2)]
    assert policy_field(advertised) == '"default";q=100;w=10'
    assert ratelimit_field(advertised) == '"default";r=50;t=30'


def test_names_are_escaped_or_refused() -> None:
    assert policy_field([Advertised('a"b\\c', 1, 1, 0, 0)]).startswith('"a\\"b\\\\c"')
    with pytest.raises(ValueError, match="printable ASCII"):
        policy_field([Advertised("caf\u00e9", 1, 1, 0, 0)])


def test_cursors_round_trip_and_resist_tampering() -> None:
    cursors = Cursors(secrets.token_bytes(32), lifetime=60)
    cursor = cursors.issue(Position(offset=40), scope="route|alice", now=1000)
    assert cursors.open(cursor, scope="route|alice", now=1030) == Position(offset=40)
    for scope, now in (("route|bob", 1000), ("other|alice", 1000), ("route|alice", 1061)):
        with pytest.raises(InvalidInput):
            cursors.open(cursor, scope=scope, now=now)
    raw = bytearray(cursor.encode())
    raw[5] = ord("A") if raw[5] != ord("A") else ord("B")
    for bad in (raw.decode(), cursor[:-2], "", "!!!", "x" * 5000):
        with pytest.raises(InvalidInput):
            cursors.open(bad, scope="route|alice", now=1000)
    other = Cursors(secrets.token_bytes(32), lifetime=60)
    with pytest.raises(InvalidInput):
        other.open(cursor, scope="route|alice", now=1000)


@given(st.text(max_size=200))
def test_any_cursor_text_opens_or_is_a_400(text: str) -> None:
    cursors = Cursors(b"k" * 32, lifetime=60)
    with contextlib.suppress(InvalidInput):
        cursors.open(text, scope="s", now=0)


def _cursor_with(residue: int) -> tuple[Cursors, str]:
    """A cursor whose length is ``residue`` modulo 4 and that holds both ``-`` and ``_``."""
    cursors = Cursors(secrets.token_bytes(32), lifetime=60)
    for offset in range(10**6):
        cursor = cursors.issue(Position(offset=offset), scope="route|alice", now=1000)
        if len(cursor) % 4 == residue and "-" in cursor and "_" in cursor:
            return cursors, cursor
    raise AssertionError("no such cursor")


def _spare_bits(cursor: str) -> str:
    """The same bytes, with the unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = 0b1111 if len(cursor) % 4 == 2 else 0b11
    return cursor[:-1] + alphabet[alphabet.index(cursor[-1]) | unused]


MANGLINGS = {
    "appended !!": lambda c: c + "!!",
    "inserted .": lambda c: c[:6] + "." + c[6:],
    "padding": lambda c: c + "=" * (-len(c) % 4 or 4),
    "extra padding": lambda c: c + "====",
    "+/ for -_": lambda c: c.replace("-", "+").replace("_", "/"),
    "line break": lambda c: c[:10] + "\n" + c[10:],
    "leading space": lambda c: " " + c,
}


@pytest.mark.parametrize("residue", [0, 2, 3])
@pytest.mark.parametrize("mangling", sorted(MANGLINGS))
def test_a_cursor_has_one_spelling(mangling: str, residue: int) -> None:
    """Only the exact unpadded base64url text the gateway issued opens (RFC 4648 §5):
    characters outside the alphabet are refused (§3.3), as is padding the cursor never
    had, so one cursor cannot be spelt many ways."""
    cursors, cursor = _cursor_with(residue)
    with pytest.raises(InvalidInput):
        cursors.open(MANGLINGS[mangling](cursor), scope="route|alice", now=1000)
    assert cursors.open(cursor, scope="route|alice", now=1000).offset is not None


@pytest.mark.parametrize("residue", [2, 3])
def test_unused_bits_of_the_last_character_must_be_zero(residue: int) -> None:
    """RFC 4648 §3.5: canonical encoding leaves the pad bits zero."""
    cursors, cursor = _cursor_with(residue)
    with pytest.raises(InvalidInput):
        cursors.open(_spare_bits(cursor), scope="route|alice", now=1000)

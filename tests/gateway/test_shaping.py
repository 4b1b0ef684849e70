"""Response shaping and header filtering (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.gateway.shaping import (
    BODY_BOUND,
    HOP_BY_HOP,
    REVEALING,
    compile_allowlist,
    leaves_origin,
    pointer_value,
    response_headers,
    shape,
)


def test_allowlist_keeps_only_named_fields() -> None:
    allow = compile_allowlist(["/id", "/items/*/sku", "/owner/name"])
    document = {
        "id": 1,
        "secret": "x",
        "items": [{"sku": "a", "cost": 3}, {"sku": "b"}, "scalar"],
        "owner": {"name": "n", "email": "e"},
    }
    assert shape(document, allow) == {
        "id": 1,
        "items": [{"sku": "a"}, {"sku": "b"}],
        "owner": {"name": "n"},
    }


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"owner": "scalar-where-object-expected"}, {}),
        ([{"id": 1, "x": 2}], [{"id": 1}]),
        ("top-level scalar", None),
        (None, None),
    ],
)
def test_structure_mismatches_are_withheld(document: Any, expected: Any) -> None:
    assert shape(document, compile_allowlist(["/owner/name", "/*/id", "/id"])) == expected


def test_whole_document_and_nested_wildcards() -> None:
    assert shape({"a": 1}, compile_allowlist([""])) == {"a": 1}
    allow = compile_allowlist(["/a", "/a/b"])  # the shorter pointer keeps the whole value
    assert shape({"a": {"b": 1, "c": 2}}, allow) == {"a": {"b": 1, "c": 2}}


def test_pointer_value_follows_rfc_6901() -> None:
    document = {"a/b": {"m~n": [10, 20]}}
    assert pointer_value(document, "/a~1b/m~0n/1") == 20
    assert pointer_value(document, "/a~1b/m~0n/2") is None
    assert pointer_value(document, "/missing") is None


def test_response_headers_are_filtered_byte_for_byte() -> None:
    kept = response_headers(
        [
            (b"Content-Disposition", 'attachment; filename="café.txt"'.encode()),
            (b"Connection", b"close, X-Route"),
            (b"X-Route", b"db-3"),
            (b"Server", b"nginx/1.2"),
            (b"ETag", b'"v1"'),
            (b"X-Debug-Anything", b"1"),
            (b"Location", b"https://internal/x"),
        ]
    )
    assert kept == [
        (b"content-disposition", 'attachment; filename="café.txt"'.encode()),
        (b"etag", b'"v1"'),
    ]
    assert response_headers([(b"etag", b'"v1"')], reshaped=True) == []


def _filtered_as_text(
    headers: list[tuple[bytes, bytes]], reshaped: bool
) -> list[tuple[bytes, bytes]]:
    """The filter as first written, comparing decoded names: the reference the bytes
    version must agree with."""
    pairs = [(name.lower(), value) for name, value in headers]
    named = {
        token.strip().decode("latin-1")
        for name, value in pairs
        if name == b"connection"
        for token in value.lower().split(b",")
    }
    kept = []
    for name, value in pairs:
        text = name.decode("latin-1")
        if text in HOP_BY_HOP or text in REVEALING or text in named or text.startswith("x-debug"):
            continue
        if reshaped and text in BODY_BOUND:
            continue
        if name in (b"location", b"content-location") and leaves_origin(value):
            continue
        kept.append((name, value))
    return kept


_NAMES = [
    *sorted(HOP_BY_HOP | REVEALING | BODY_BOUND),
    "content-type",
    "Location",
    "content-location",
    "X-Debug-Info",
    "x-custom",
    "Keep-Alive",
    "x-hop",
]
_VALUES = [b"/relative", b"https://upstream.internal/x", b"//host/x", b"x-hop, x-custom", b"a\xa0"]


@given(
    headers=st.lists(
        st.tuples(st.sampled_from(_NAMES).map(str.encode), st.sampled_from(_VALUES)),
        max_size=10,
    ),
    reshaped=st.booleans(),
)
def test_response_headers_match_the_text_filter(
    headers: list[tuple[bytes, bytes]], reshaped: bool
) -> None:
    connection = [(b"Connection", b"x-hop, X-Custom")] if len(headers) % 2 else []
    sent = headers + connection
    assert response_headers(sent, reshaped=reshaped) == _filtered_as_text(sent, reshaped)


@pytest.mark.parametrize(
    ("value", "leaves"),
    [
        (b"/notes/7", False),
        (b"notes/7?x=a:b", False),
        (b"./a#b:c", False),
        (b"https://upstream.internal/x", True),
        (b"//upstream.internal/x", True),
        # Browsers read a backslash as a slash in http(s) URLs and strip tabs, newlines
        # and leading controls (WHATWG URL), so these name another host as well.
        (b"/\\evil.example", True),
        (b"\\\\evil.example", True),
        (b"https:\\\\evil.example", True),
        (b" //evil.example", True),
        (b"/\t/evil.example", True),
        (b"javascript:alert(1)", True),
        (b"HTTPS:evil.example", True),
    ],
)
def test_locations_that_leave_the_origin(value: bytes, leaves: bool) -> None:
    assert leaves_origin(value) is leaves
    kept = response_headers([(b"location", value)])
    assert (kept == []) is leaves

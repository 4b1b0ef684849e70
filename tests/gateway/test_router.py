"""Path templates and the route trie (RFC 3986 §3.3 segments, §5.2.4 dot-segments)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import BadPath
from bastion.gateway.router import Router, overlaps
from bastion.gateway.templates import PathTemplate, split_path


def _router(*templates: str) -> Router[str]:
    return Router((PathTemplate.parse(t), ("GET",), t) for t in templates)


def test_static_segment_wins_over_parameter() -> None:
    router = _router("/users/{id}", "/users/me", "/users/{id}/notes/{note}")
    assert router.match("GET", ["users", "me"]).route == "/users/me"  # type: ignore[union-attr]
    match = router.match("GET", ["users", "42"])
    assert match is not None
    assert (match.route, match.params) == ("/users/{id}", {"id": "42"})
    nested = router.match("GET", ["users", "me", "notes", "n1"])
    assert nested is not None
    assert nested.params == {"id": "me", "note": "n1"}


def test_backtracks_from_static_to_parameter() -> None:
    router = _router("/a/b/c", "/a/{x}/d")
    match = router.match("GET", ["a", "b", "d"])
    assert match is not None
    assert match.params == {"x": "b"}


def test_unknown_paths_and_methods() -> None:
    router = _router("/users/{id}")
    assert router.match("GET", ["users"]) is None
    assert router.match("GET", ["users", "1", "x"]) is None
    assert router.match("POST", ["users", "1"]) is None


def test_duplicate_route_is_refused() -> None:
    with pytest.raises(ValueError, match="two routes"):
        _router("/a/{x}", "/a/{y}")


def test_many_routes_match_by_depth() -> None:
    templates = [f"/svc{i}/items/{{id}}" for i in range(2000)]
    router = _router(*templates)
    match = router.match("GET", ["svc1999", "items", "7"])
    assert match is not None
    assert match.route == "/svc1999/items/{id}"


def test_overlaps_are_reported() -> None:
    parsed = [
        ("a", PathTemplate.parse("/users/{id}"), ("GET",)),
        ("b", PathTemplate.parse("/users/me"), ("GET",)),
        ("c", PathTemplate.parse("/users/me"), ("POST",)),
        ("d", PathTemplate.parse("/orders/{id}"), ("GET",)),
    ]
    assert overlaps(parsed) == [("a", "b")]


@pytest.mark.parametrize(
    "text", ["users", "/users/", "/a/{b", "/a/{1x}", "/a/../b", "/a/{x}/{x}", "/a b"]
)
def test_bad_templates(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message names the template
        PathTemplate.parse(text)


@pytest.mark.parametrize(
    "raw",
    [b"/a//b", b"/a/%2e%2E", b"/a/.", b"/a/%2F", b"/a/%5c", b"/a/%00", b"/a/%ff", b"a", b"/a/"],
)
def test_unsafe_request_paths(raw: bytes) -> None:
    with pytest.raises(BadPath):
        split_path(raw)


def test_segments_are_decoded_once() -> None:
    assert split_path(b"/a/%2541/caf%C3%A9") == ["a", "%41", "café"]


def test_render_encodes_each_parameter_as_one_segment() -> None:
    template = PathTemplate.parse("/v1/{a}/x")
    assert template.render({"a": "../admin?x=1#f"}) == "/v1/..%2Fadmin%3Fx%3D1%23f/x"


@given(st.binary(max_size=64))
def test_split_path_parses_or_raises_bad_path(raw: bytes) -> None:
    """Fuzz invariant: any request path is either split into safe segments or refused."""
    try:
        segments = split_path(b"/" + raw)
    except BadPath:
        return
    for segment in segments:
        assert segment not in ("", ".", "..")
        assert "/" not in segment
        assert "\\" not in segment
        rendered = PathTemplate.parse("/{p}").render({"p": segment})
        assert split_path(rendered.encode()) == [segment]


_TEMPLATES = ["/a", "/a/b", "/a/{x}", "/{y}/b", "/a/b/c", "/{p}/{q}/c", "/", "/me/{id}"]


@given(
    declared=st.lists(
        st.tuples(st.sampled_from(_TEMPLATES), st.sampled_from(["GET", "POST"])),
        unique=True,
        max_size=8,
    ),
    segments=st.lists(st.sampled_from(["a", "b", "c", "me", "7"]), max_size=4),
    method=st.sampled_from(["GET", "POST"]),
)
def test_the_exact_table_answers_as_the_walk(
    declared: list[tuple[str, str]], segments: list[str], method: str
) -> None:
    """Routes without parameters are looked up whole; the answer is the trie's."""
    try:
        router = Router((PathTemplate.parse(t), (m,), f"{m} {t}") for t, m in declared)
    except ValueError:
        return  # two templates for one method and shape
    assert router.match(method, segments) == router.walk(method, segments)

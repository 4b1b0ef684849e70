"""The route table, compiled once into a segment trie.

Matching walks one trie node per path segment, so its cost depends on the depth of the
path, not on the number of routes. A static segment wins over a parameter at the same
position (``/users/me`` before ``/users/{id}``), the rule Envoy and Kong also apply;
``overlaps`` lists such pairs so ``bastion check`` can point them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from bastion.gateway.templates import PathTemplate

R = TypeVar("R")


@dataclass
class _Node(Generic[R]):
    static: dict[str, _Node[R]] = field(default_factory=dict)
    param: _Node[R] | None = None
    # method -> (route, parameter names in path order)
    methods: dict[str, tuple[R, tuple[str, ...]]] = field(default_factory=dict)


class Match(NamedTuple, Generic[R]):
    # A tuple, not a dataclass: one is made per request, and a tuple is built fastest.
    route: R
    params: dict[str, str]


class Router(Generic[R]):
    def __init__(self, routes: Iterable[tuple[PathTemplate, Sequence[str], R]]) -> None:
        self._root: _Node[R] = _Node()
        # Routes without parameters by (method, segments). The walk tries static children
        # first at every depth, so the all-static path is the first it would find: a hit
        # here is the walk's answer without the walk.
        self._exact: dict[tuple[str, tuple[str, ...]], R] = {}
        # Every route, once, in declaration order.
        self.values: list[R] = []
        for template, methods, route in routes:
            self.values.append(route)
            node = self._root
            for kind, text in template.segments:
                if kind == "static":
                    node = node.static.setdefault(text, _Node())
                else:
                    if node.param is None:
                        node.param = _Node()
                    node = node.param
            for method in methods:
                if method in node.methods:
                    raise ValueError(f"two routes for {method} {template.text}")
                node.methods[method] = (route, template.params)
                if not template.params:
                    self._exact[(method, tuple(text for _, text in template.segments))] = route

    def match(self, method: str, segments: Sequence[str]) -> Match[R] | None:
        exact = self._exact.get((method, tuple(segments)))
        if exact is not None:
            return Match(exact, {})
        return self.walk(method, segments)

    def walk(self, method: str, segments: Sequence[str]) -> Match[R] | None:
        """``match`` through the trie alone."""
        values: list[str] = []
        node = self._walk(self._root, segments, 0, values, method)
        if node is None:
            return None
        route, names = node.methods[method]
        return Match(route, dict(zip(names, values, strict=True)))

    def allowed_methods(self, segments: Sequence[str]) -> list[R]:
        """Every route declared for this path, whatever its method (for CORS preflight)."""
        found: list[R] = []
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            match = self.match(method, segments)
            if match is not None and match.route not in found:
                found.append(match.route)
        return found

    def _walk(
        self, node: _Node[R], segments: Sequence[str], depth: int, values: list[str], method: str
    ) -> _Node[R] | None:
        if depth == len(segments):
            return node if method in node.methods else None
        segment = segments[depth]
        child = node.static.get(segment)
        if child is not None and (found := self._walk(child, segments, depth + 1, values, method)):
            return found
        if node.param is not None:
            values.append(segment)
            if found := self._walk(node.param, segments, depth + 1, values, method):
                return found
            values.pop()
        return None


def overlaps(
    routes: Sequence[tuple[str, PathTemplate, Sequence[str]]],
) -> list[tuple[str, str]]:
    """Pairs of route labels whose templates can match the same request."""
    found = []
    for i, (label, template, methods) in enumerate(routes):
        for other_label, other, other_methods in routes[i + 1 :]:
            if set(methods) & set(other_methods) and template.overlaps(other):
                found.append((label, other_label))
    return found

"""Claims bound to what a request names: path and query parameters, body fields (BOLA).

``/users/{user_id}`` with ``param_claims = { user_id = "sub" }`` reaches the upstream
only for the caller's own ``user_id``; ``body_claims = { "/username" = "sub" }`` does
the same for a field of the body, so that "create my profile" cannot be pointed at
another user. Values are compared in their canonical id form (``identifiers``): a
path value was canonicalised when the route matched, a query value must already be
canonical (the query is forwarded as sent), a body value is rewritten canonical.

A bound value that is missing or repeated refuses too: a rule that could be skipped by
leaving a field out, or by sending a second value the upstream might pick instead,
would not be a rule. Refusals are 404s, like an object that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.errors import Hidden, InvalidInput
from bastion.gateway.caller import Caller, claim_text
from bastion.gateway.identifiers import IdForm, canonical, canonical_json
from bastion.gateway.shaping import pointer_value

_LOOK_ALIKE = re.compile(r"[.\s\[\]-]")
NOT_CANONICAL = (
    "Object ids in the query must be written in their canonical form: integers without "
    "sign or leading zeros, UUIDs in lower case with hyphens."
)


@dataclass(frozen=True)
class Binding:
    where: str  # a parameter name, or a JSON pointer into the body
    claim: str
    form: IdForm


@dataclass(frozen=True)
class Bindings:
    path: tuple[Binding, ...] = ()
    query: tuple[Binding, ...] = ()
    body: tuple[Binding, ...] = ()
    # "set": the gateway writes the claim's value into the body instead of comparing.
    set_body: bool = False

    def check_params(
        self, caller: Caller, params: Mapping[str, str], query: Mapping[str, str | list[str]]
    ) -> None:
        for binding in self.path:
            _require(caller, binding, params.get(binding.where), "parameter")
        if self.query:
            _refuse_look_alikes(query, self.query)
        for binding in self.query:
            value = query.get(binding.where)
            if isinstance(value, str) and canonical(value, binding.form) not in (value, None):
                raise InvalidInput(NOT_CANONICAL)
            _require(caller, binding, value if isinstance(value, str) else None, "parameter")

    def bind_body(self, caller: Caller, document: Any) -> None:
        """Compare (or set) every bound field of a parsed JSON body, in place."""
        for binding in self.body:
            if self.set_body:
                _set(document, binding.where, _claim_value(caller, binding))
                continue
            found = canonical_json(pointer_value(document, binding.where), binding.form)
            _require(caller, binding, found, "body field")
            canonicalise_at(document, binding.where, binding.form)


def _require(caller: Caller, binding: Binding, value: str | None, what: str) -> None:
    expected = claim_text(caller, binding.claim)
    # The claim is compared as it is, never canonicalised: subjects "007" and "7" are two
    # users, and a value canonicalised to "7" belongs to the second one only.
    if value is None or expected is None or value != expected:
        raise Hidden(f"{what} does not match the caller")


def _refuse_look_alikes(
    query: Mapping[str, str | list[str]], bindings: tuple[Binding, ...]
) -> None:
    """A second spelling of a bound name (``USER_ID``, ``user.id``) that frameworks read as
    the same parameter (ASP.NET ignores case, PHP turns ``.``, spaces and ``[`` into
    ``_``) could carry another value past the one compared here."""
    bound = {binding.where: _folded(binding.where) for binding in bindings}
    folded = set(bound.values())
    for name in query:
        if name not in bound and _folded(name) in folded:
            raise InvalidInput("A query parameter is given under two spellings.")


def _folded(name: str) -> str:
    return _LOOK_ALIKE.sub("_", name.casefold())


def _claim_value(caller: Caller, binding: Binding) -> str | int:
    text = claim_text(caller, binding.claim)
    if text is None:
        raise Hidden("no claim to bind")
    if binding.form is IdForm.INTEGER and canonical(text, IdForm.INTEGER) is not None:
        return int(text)
    return text


def canonicalise_at(document: Any, pointer: str, form: IdForm) -> str | None:
    """The canonical id at ``pointer``, written back in place (its JSON type kept)."""
    value = pointer_value(document, pointer)
    found = canonical_json(value, form)
    if found is not None and isinstance(value, str) and found != value:
        _set(document, pointer, found)
    return found


def _set(document: Any, pointer: str, value: object) -> None:
    *parents, last = pointer.split("/")[1:]
    parent = pointer_value(document, "/".join(["", *parents]) if parents else "")
    if not isinstance(parent, dict):
        raise InvalidInput(f"The body needs an object holding {pointer}.")
    parent[last.replace("~1", "/").replace("~0", "~")] = value

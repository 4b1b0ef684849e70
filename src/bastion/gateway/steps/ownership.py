"""Object-level authorization through the ownership registry, a look-up call or the
answer's owner field (OWASP API1, BOLA; ``bastion.gateway.objects``). Refusals are
404s, like an object that does not exist.

- request: the owned object must be the caller's; an id the app chose for a create is
  recorded for the caller before the write (so two racing creates cannot both reach the
  upstream); a look-up asks the upstream who owns the object;
- answer: the answer's owner field must be the caller;
- done: a refused create frees its id, a DELETE of the owned object forgets it;
- failed: an id reserved by a create that never reached the upstream is freed.
"""

from __future__ import annotations

import logging

import orjson

from bastion.errors import CircuitOpen, Hidden, UpstreamFailure
from bastion.gateway.caller import claim_text, principal
from bastion.gateway.exchange import Exchange
from bastion.gateway.identifiers import registry_key
from bastion.gateway.routes import Route
from bastion.gateway.shaping import pointer_value
from bastion.gateway.steps.base import Step
from bastion.gateway.upstream import UNAVAILABLE, read_limited

log = logging.getLogger("bastion.gateway")


class Ownership(Step):
    name = "ownership"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.checks_ownership or route.settings.objects.response_owner is not None

    async def request(self, ex: Exchange) -> None:
        route = ex.route
        caller = ex.caller
        if caller is None or not route.checks_ownership:
            return
        objects = route.settings.objects
        claimed = claim_text(caller, objects.owner_claim)
        owner = None if claimed is None else principal(caller, claimed)
        registry = self.services.ownership
        if objects.owned is not None:
            if owner is None or ex.object_id is None:
                raise Hidden("no owner or object id")
            key = registry_key(ex.object_id, route.owned_form)
            await registry.require_owner(objects.owned, key, owner)
        if objects.records is not None:
            if owner is None:
                # Nobody could be recorded as the owner of what this create makes.
                raise Hidden("no owner claim to record")
            if ex.created_id is not None:
                key = registry_key(ex.created_id, route.created_form)
                recorded_owner, recorded = await registry.record(objects.records, key, owner)
                if recorded_owner != owner:
                    raise Hidden("object owned by another subject")
                ex.reserved = recorded
        if route.lookup is not None:
            await self._look_up(ex, claimed)

    async def _look_up(self, ex: Exchange, claimed: str | None) -> None:
        route = ex.route
        upstream = route.upstream
        path = route.lookup.render(ex.params) if route.lookup is not None else ""
        async with upstream.request("GET", path, b"", ex.outgoing, None) as response:
            if response.status == 404:
                raise Hidden("look-up: no such object")
            if response.status == 401 and upstream.credential is not None:
                upstream.credential.rejected(sent_credential(ex))
            if response.status != 200:
                log.warning("ownership look-up on %s answered %d", upstream.name, response.status)
                raise UpstreamFailure(UNAVAILABLE)
            raw = await read_limited(response, upstream.settings.max_response_bytes)
        try:
            found = pointer_value(orjson.loads(raw), route.settings.objects.lookup_owner)
        except orjson.JSONDecodeError:
            found = None
        if claimed is None or owner_text(found) != claimed:
            raise Hidden("look-up: owned by another subject")

    async def answer(self, ex: Exchange) -> None:
        pointer = ex.route.settings.objects.response_owner
        if pointer is None or ex.answer is None:
            return
        document = ex.answer.json()
        if document is None:
            return  # 204 or an empty 200: nothing to withhold
        caller = ex.caller
        claimed = (
            None if caller is None else claim_text(caller, ex.route.settings.objects.owner_claim)
        )
        if claimed is None or owner_text(pointer_value(document, pointer)) != claimed:
            raise Hidden("response owned by another subject")

    async def done(self, ex: Exchange) -> None:
        status = ex.status or 0
        if 400 <= status < 500:
            await self._release(ex)  # the upstream refused: nothing was made
        route = ex.route
        if route.forgets and ex.method == "DELETE" and 200 <= status < 300:
            # A deleted object leaves the registry, so a reused id cannot reach its old owner.
            kind = route.settings.objects.owned
            if kind is not None and ex.object_id is not None:
                key = registry_key(ex.object_id, route.owned_form)
                await self.services.ownership.forget(kind, key)

    async def failed(self, ex: Exchange, error: BaseException) -> None:
        unprocessed = not getattr(error, "maybe_processed", True)
        if not ex.called or isinstance(error, CircuitOpen) or unprocessed:
            await self._release(ex)

    async def _release(self, ex: Exchange) -> None:
        """Free an id reserved for this create when the upstream provably made nothing."""
        kind = ex.route.settings.objects.records
        if ex.reserved and kind is not None and ex.created_id is not None:
            ex.reserved = False
            key = registry_key(ex.created_id, ex.route.created_form)
            await self.services.ownership.forget(kind, key)


def owner_text(value: object) -> str | None:
    """An owner or id as text: a non-empty string or an integer, nothing else (no null,
    no boolean, no structure that would stringify into a match)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text or None


def sent_credential(ex: Exchange) -> str:
    """The upstream's own credential as it was sent with this request."""
    credential = ex.route.upstream.credential
    assert credential is not None
    return next((value for name, value in ex.outgoing if name == credential.header), "")

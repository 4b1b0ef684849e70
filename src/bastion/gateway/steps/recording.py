"""Recording: the id a create made goes into the ownership registry with the caller as
owner (a conflicting id withholds the answer; an answer without its id is a 502 and an
audit event, since the object would exist with no owner), and every allowed write is
audited with its route, subject, app and object id, never its body."""

from __future__ import annotations

import logging

from bastion.audit import Outcome
from bastion.errors import UpstreamFailure
from bastion.gateway.caller import claim_text, principal
from bastion.gateway.exchange import Exchange, audit_exchange
from bastion.gateway.identifiers import canonical_json, registry_key
from bastion.gateway.routes import BODY_METHODS, Route
from bastion.gateway.shaping import pointer_value
from bastion.gateway.steps.base import Step
from bastion.gateway.upstream import UNAVAILABLE

log = logging.getLogger("bastion.gateway")


class Recording(Step):
    name = "recording"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return bool(set(route.settings.methods) & BODY_METHODS)

    async def answer(self, ex: Exchange) -> None:
        objects = ex.route.settings.objects
        if objects.records is None or ex.caller is None:
            return
        if ex.created_id is not None and objects.id_source[0] != "answer":
            ex.object_id = ex.created_id  # recorded before the call
            return
        claimed = claim_text(ex.caller, objects.owner_claim)
        if claimed is None or ex.answer is None:
            return
        _source, where = objects.id_source
        created = canonical_json(pointer_value(ex.answer.json(), where), ex.route.created_form)
        if created is None:
            # The object exists upstream with no owner, out of everyone's reach through
            # the gateway: say so to the app and to the audit trail rather than succeed.
            audit_exchange(
                self.services.audit, ex, "gateway.ownership.unrecorded", 502, Outcome.FAILURE
            )
            log.warning("route %s: no object id at %s to record", ex.route.label, where)
            raise UpstreamFailure(UNAVAILABLE)
        ex.object_id = created
        owner = principal(ex.caller, claimed)
        key = registry_key(created, ex.route.created_form)
        try:
            recorded, _ = await self.services.ownership.record(objects.records, key, owner)
        except ValueError:
            recorded = None
        if recorded != owner:
            # The upstream handed out an id the registry gives to someone else (or one too
            # long to record): withhold the answer rather than let two users share it.
            log.warning("route %s: object id conflict in the ownership registry", ex.route.label)
            raise UpstreamFailure(UNAVAILABLE)

    async def done(self, ex: Exchange) -> None:
        status = ex.status or 0
        if ex.method in BODY_METHODS and status < 400:
            audit_exchange(self.services.audit, ex, "gateway.write", status, Outcome.SUCCESS)

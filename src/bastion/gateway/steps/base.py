"""What a gateway step is: a small object with one method per phase it takes part in.

Phases, in the life of one request (the model: Envoy's filter chain, Kong's phases):

- ``request``: before the upstream is called, in the order of ``steps.ORDER``; a step
  may answer (``Exchange.send_whole``), and the steps after it are skipped;
- ``answer``: on a 2xx answer read whole, before the app sees it (owner checks, ids to
  record, paging, shaping);
- ``respond``: on any answer read whole, just before it is sent (idempotency records,
  stale copies);
- ``done``: after the upstream answered and the app has its answer (audit, registry);
- ``failed``: when anything raised after the request phase began; every step's handler
  runs, in reverse order; one may answer instead of the error (a stale copy).

A step class says at route construction whether a route needs it (``wanted``), so a
route pays only for its steps. A new protection is one module and one line in ORDER.
"""

from __future__ import annotations

from typing import ClassVar

from bastion.gateway.exchange import Exchange, Services
from bastion.gateway.routes import Route

PHASES = ("request", "answer", "respond", "done", "failed")


class Step:
    name: ClassVar[str]

    @classmethod
    def wanted(cls, route: Route) -> bool:
        """Whether ``route`` needs this step (decided once, at start)."""
        return True

    def __init__(self, services: Services) -> None:
        self.services = services

    async def request(self, ex: Exchange) -> None:
        """Before the upstream call."""

    async def answer(self, ex: Exchange) -> None:
        """On a 2xx answer read whole."""

    async def respond(self, ex: Exchange) -> None:
        """Just before an answer read whole is sent."""

    async def done(self, ex: Exchange) -> None:
        """After the upstream answered and the app has its answer."""

    async def failed(self, ex: Exchange, error: BaseException) -> None:
        """When the request failed after its request phase began."""

    @classmethod
    def phases(cls) -> tuple[str, ...]:
        """The phases this step takes part in (those it overrides)."""
        return tuple(p for p in PHASES if getattr(cls, p) is not getattr(Step, p))

"""The one place Bastion reaches into its HTTP server: uvicorn's connection protocol with a
header deadline and a per-connection request cap.

An ASGI app first sees a request once its headers are complete, so it cannot stop a
client that sends them slowly (slowloris), and it cannot close a kept-alive connection
whose requests were all answered. uvicorn has no public hook for either, so
``GuardedHttpTools`` subclasses its httptools protocol. It relies on these private
parts of uvicorn, which ``tests/server_protocol/test_uvicorn_contract.py`` checks and
which are why pyproject.toml bounds uvicorn (``<0.56``):

- ``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol``, which the server builds
  per connection as ``cls(config=..., server_state=..., app_state=...)``;
- its attributes ``loop``, ``transport``, ``client``, ``cycle`` (the request being
  answered, or None) and ``app_state`` (the ASGI lifespan state, see below);
- its parser callbacks ``connection_made``, ``connection_lost``, ``on_message_begin``
  and ``on_headers_complete``, each extended here around uvicorn's own;
- ``on_response_complete``, restated without its keep-alive timer (``server_state``,
  ``flow``, ``pipeline``, ``_start_asgi_task``, ``timeout_keep_alive`` and
  ``timeout_keep_alive_handler``), and ``_unset_keepalive_if_required``, extended;
- ``RequestResponseCycle.response_complete``, and ``RequestResponseCycle.keep_alive``,
  which set to False makes uvicorn answer with ``connection: close`` and close after it;
- ``RequestResponseCycle.transport`` (what the cycle writes its answer to, replaced by
  ``OneWrite``) and ``response_started`` and ``disconnected`` (read by it).

The 408 is written to the transport as raw HTTP/1.1 bytes because no ASGI request
exists yet to answer through.

Configuration is per connection, not per class: the served app publishes a
``ConnectionGuard`` (limits and audit pipeline) in the ASGI lifespan state
(``lifespan_state``), and uvicorn hands that state to every protocol it builds. Several
apps can thus be served in one process with different limits, and under ``--workers``
each process publishes its own. A server that runs the app without this protocol (the
uvicorn CLI without ``--http``, granian) ignores both settings; granian has a header
timeout of its own but no request cap (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.errors import RequestTimeout
from bastion.web.problems import PROBLEM_JSON, problem_body
from bastion.web.settings import ServerSettings

log = logging.getLogger("bastion.guards")

STATE_KEY = "bastion.connection_guard"
# A timer left running counts as due this close to its deadline (loop clocks tick in
# milliseconds; one moved by less would fire again at once).
TIMER_SLACK = 0.001


@dataclass(frozen=True)
class ConnectionGuard:
    """What each connection enforces, and where its refusals are audited."""

    header_timeout: float
    max_requests: int
    audit: AuditPipeline | None = None


# What a connection enforces when the app published nothing (ServerSettings' defaults).
UNPUBLISHED = ConnectionGuard(
    header_timeout=ServerSettings.model_fields["header_timeout"].default,
    max_requests=ServerSettings.model_fields["max_requests_per_connection"].default,
)


def lifespan_state(server: ServerSettings, audit: AuditPipeline | None) -> dict[str, Any]:
    """The lifespan state entry that hands the ``[server]`` limits to each connection."""
    guard = ConnectionGuard(server.header_timeout, server.max_requests_per_connection, audit)
    return {STATE_KEY: guard}


def _timeout_answer() -> bytes:
    body = problem_body(
        RequestTimeout.status,
        detail="The request headers arrived too slowly.",
        title=RequestTimeout.title,
        type=RequestTimeout.type,
    )
    head = (
        f"HTTP/1.1 {RequestTimeout.status} {RequestTimeout.title}\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class OneWrite(asyncio.Transport):
    """The transport a request's cycle writes to: the answer's head is held until the
    first write of its body, and both leave in one call, so a whole answer costs one
    write system call instead of two.

    uvicorn writes the status line and header section in one ``write`` and the body in
    another; uvloop sends each at once (a system call each, and on loopback the
    receiver's TCP processing too). Nothing is reordered or dropped: the held head goes
    out before any other write or close, and at the latest at the next turn of the
    event loop, so a streamed answer whose body is slow to come still shows its head
    at once.
    """

    __slots__ = ("_cycle", "_held", "_loop", "_transport")

    def __init__(
        self, transport: asyncio.Transport, cycle: Any, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self._transport = transport
        self._cycle = cycle
        self._loop = loop
        # None before the head was written; the head while it is held; b"" after.
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held:
            self._held = b""
            # Done with the cycle, which holds this transport: without the reference back
            # the cycle is freed when its request is, not by the garbage collector (a
            # reference cycle per request made young collections frequent and long).
            self._cycle = None
            self._transport.writelines((held, data))
        elif held is None and self._cycle.response_started:
            # The first write once the answer has started is its head (a 100 Continue
            # is written before that, and passes through).
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held:
            self._held = b""
            cycle, self._cycle = self._cycle, None
            if not cycle.disconnected and not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a request cap
    (``bastion serve`` passes it as ``http=``)."""

    _guard: ConnectionGuard
    # The header deadline: a loop time while a request's headers are awaited, else None.
    _deadline: float | None
    # The timer that checks it. It is not cancelled when the headers arrive, only left to
    # find no deadline (or a later one, which it waits for): a timer per request cost
    # ~1% of the gateway's throughput, and a connection sees at most one per timeout.
    _header_timer: asyncio.TimerHandle | None
    # The keep-alive deadline between an answer and the next request (a loop time, else
    # None) and its timer, kept the same way: uvicorn schedules a timer after every answer
    # and cancels it when the next request arrives.
    _idle_until: float | None
    _idle_timer: asyncio.TimerHandle | None
    _served: int

    def connection_made(self, transport: Any) -> None:
        # The lifespan has completed before uvicorn accepts a connection, so the state
        # holds whatever the app published.
        self._guard = self.app_state.get(STATE_KEY, UNPUBLISHED)
        self._deadline = None
        self._header_timer = None
        self._idle_until = None
        self._idle_timer = None
        self._served = 0
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)
        self._idle_until = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def on_response_complete(self) -> None:
        # uvicorn's own, but for the keep-alive timer (see _idle_until).
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_until = self.loop.time() + self.timeout_keep_alive
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(self._idle_until, self._idle_check)

    def _unset_keepalive_if_required(self) -> None:
        # Called by uvicorn when data arrives and when the connection ends.
        self._idle_until = None
        super()._unset_keepalive_if_required()

    def _idle_check(self) -> None:
        self._idle_timer = None
        until = self._idle_until
        if until is None:
            return  # a request came; the next answer starts a timer again
        if self.loop.time() < until - TIMER_SLACK:
            # Set after a later answer than the one this timer was started for.
            self._idle_timer = self.loop.call_at(until, self._idle_check)
            return
        self._idle_until = None
        self.timeout_keep_alive_handler()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._deadline = None
        self._served += 1
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None:
            return
        if cycle.transport is self.transport:
            # A new request (an upgrade keeps the cycle before it): its answer is
            # written through OneWrite. Its task has not run yet.
            cycle.transport = OneWrite(self.transport, cycle, self.loop)
        if self._served >= self._guard.max_requests:
            # The answer says "connection: close" and the connection ends after it.
            cycle.keep_alive = False

    def _arm(self) -> None:
        self._deadline = self.loop.time() + self._guard.header_timeout
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._deadline, self._deadline_check)

    def _deadline_check(self) -> None:
        self._header_timer = None
        deadline = self._deadline
        if deadline is None:
            return  # the headers arrived; the next request arms a timer again
        if self.loop.time() < deadline:
            # Set by a later request than the one this timer was started for.
            self._header_timer = self.loop.call_at(deadline, self._deadline_check)
            return
        self._too_slow()

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers were complete
        log.warning("closing a connection whose request headers were too slow")
        audit = self._guard.audit
        if audit is not None:
            address = self.client[0] if self.client else "unknown"
            audit.emit(
                AuditEvent(
                    "guards.resource.refused",
                    Outcome.DENIED,
                    actor=f"ip:{address}",
                    details={"limit": "header_timeout", "status": 408},
                )
            )
        self.transport.write(_timeout_answer())
        self.transport.close()

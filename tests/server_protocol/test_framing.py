"""``FramedCycle`` against uvicorn's own ``RequestResponseCycle``: for any header list
(field names and values with separators, controls, CR and LF among them), any status,
method and keep-alive, the same bytes on the wire, the same framing decisions and the
same refusals (nothing written)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from bastion.web.server_protocol import FramedCycle
from tests.server_protocol.fakes import FakeTransport

# Bytes that matter to the framing: letters, digits, separators, controls, CR, LF, tab.
_ALPHABET = b"aZ09-_ ,;:=\t\r\n\x00\x7f()@/"
octets = st.lists(st.sampled_from(list(_ALPHABET)), max_size=6).map(bytes)
names = st.sampled_from(
    [b"content-length", b"Content-Length", b"transfer-encoding", b"connection", b"x-a"]
) | octets.filter(bool)
values = (
    st.sampled_from([b"0", b"5", b"chunked", b"Chunked", b"close", b"keep-alive, Close"]) | octets
)
fields = st.lists(st.tuples(names, values), max_size=6)


def _cycle(kind: type[RequestResponseCycle], method: str, keep_alive: bool) -> Any:
    transport = FakeTransport()
    return kind(
        scope={  # type: ignore[typeddict-item]
            "type": "http",
            "method": method,
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "http_version": "1.1",
            "client": ("192.0.2.7", 50000),
        },
        transport=transport,
        flow=FlowControl(transport),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[(b"date", b"Sat, 06 Dec 2026 00:00:00 GMT")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


async def _start(cycle: Any, status: int, headers: list[tuple[bytes, bytes]]) -> object:
    try:
        await cycle.send({"type": "http.response.start", "status": status, "headers": headers})
    except (RuntimeError, ValueError):
        # Refused (a name or value that could split the answer, a length that is no
        # number), with nothing written. Which of two faults is named first may differ.
        return ("refused", cycle.transport.written)
    return (
        cycle.transport.written,
        cycle.keep_alive,
        cycle.chunked_encoding,
        cycle.expected_content_length,
        cycle.response_started,
        cycle.waiting_for_100_continue,
    )


@settings(max_examples=400, deadline=None)
@given(
    headers=fields,
    status=st.sampled_from([200, 204, 304, 404, 599]),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    keep_alive=st.booleans(),
)
def test_the_head_is_framed_as_uvicorn_frames_it(
    headers: list[tuple[bytes, bytes]], status: int, method: str, keep_alive: bool
) -> None:
    async def run() -> None:
        theirs = await _start(_cycle(RequestResponseCycle, method, keep_alive), status, headers)
        ours = await _start(_cycle(FramedCycle, method, keep_alive), status, headers)
        assert ours == theirs

    asyncio.run(run())


async def test_the_body_and_an_access_log_go_through_uvicorns_send() -> None:
    cycle = _cycle(FramedCycle, "GET", True)
    cycle.access_log = True
    headers = [(b"content-length", b"2")]
    await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
    await cycle.send({"type": "http.response.body", "body": b"ok"})
    assert cycle.transport.written.endswith(b"\r\n\r\nok")
    assert cycle.response_complete

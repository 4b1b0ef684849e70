"""The upstream HTTP/1.1 client (``bastion.gateway.http1``) against a scripted server on a
real socket: each test writes the exact bytes an upstream might answer with.

Framing rules are RFC 9112's: message body length (§6.3), chunked coding (§7.1),
persistence (§9.3); fields per RFC 9110 (§5.5: no CR, LF or NUL in a value).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.gateway.http1 import (
    _CONTROL,
    _TOKEN,
    MAX_HEADER_FIELDS,
    ConnectFailed,
    Opener,
    Pool,
    UnsendableRequest,
    UpstreamBroken,
    _fields_sendable,
    open_tcp,
)
from tests.support.pki import TestCA

Reply = Callable[[bytes], bytes | None]


@dataclass
class Script:
    """What the server answers to each request (None: close without answering)."""

    reply: Reply
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def scripted(reply: Reply) -> AsyncIterator[tuple[Script, int]]:
    script = Script(reply)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        script.writers.append(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                script.requests.append(request)
                answer = script.reply(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except asyncio.CancelledError:
            pass  # the test is over and the server stops: nothing to report
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield script, port
    finally:
        server.close()
        for writer in script.writers:
            writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def handled(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A server whose every connection runs ``handler``: for answers written over time."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def reset(writer: asyncio.StreamWriter) -> None:
    """Ends the connection with a TCP reset, not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def pool(port: int, **options: float) -> Pool:
    settings: dict[str, float] = {
        "limit": 4,
        "keepalive_timeout": 30,
        "connect_timeout": 2,
        "read_timeout": 2,
        "total_timeout": 5,
        **options,
    }
    return Pool(
        host="127.0.0.1",
        port=port,
        tls=None,
        limit=int(settings["limit"]),
        keepalive_timeout=settings["keepalive_timeout"],
        connect_timeout=settings["connect_timeout"],
        read_timeout=settings["read_timeout"],
        total_timeout=settings["total_timeout"],
    )


def ok(body: bytes = b'{"a":1}', extra: bytes = b"") -> Reply:
    return lambda _: (
        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s"
        % (
            len(body),
            extra,
            body,
        )
    )


async def fetch(
    p: Pool,
    method: str = "GET",
    target: str = "/x",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    limit: int = 1_000_000,
) -> tuple[int, bytes | None]:
    answer = await p.request(method, target, headers or [], body)
    try:
        return answer.status, await answer.read(limit)
    finally:
        answer.release()


async def test_the_request_is_written_with_its_own_framing() -> None:
    async with scripted(ok()) as (script, port):
        p = pool(port)
        headers = [
            ("accept", "application/json"),
            # Framing is the client's alone: a caller's values never reach the wire.
            ("host", "evil.example"),
            ("content-length", "999"),
            ("transfer-encoding", "chunked"),
            ("connection", "upgrade"),
        ]
        assert await fetch(p, "POST", "/items?x=1", headers, b"hello") == (200, b'{"a":1}')
        await p.close()
    request = script.requests[0]
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /items?x=1 HTTP/1.1"
    assert sorted(lines[1:]) == sorted(
        [b"host: 127.0.0.1:%d" % port, b"accept: application/json", b"content-length: 5"]
    )
    assert body == b"hello"


async def test_a_post_without_a_body_says_its_length_is_zero() -> None:
    async with scripted(ok()) as (script, port):
        p = pool(port)
        await fetch(p, "POST")
        await p.close()
    assert b"content-length: 0\r\n" in script.requests[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-note", "a\r\nx-injected: 1"),
        ("x-note", "a\nb"),
        ("x-note", "a\x00b"),
        ("x-bad\r\nname", "v"),
        ("x bad", "v"),
        # Not a token (RFC 9110 §5.1), or a control character in the value (§5.5).
        ("content-length\t", "5"),
        ("x-note", "a\x0bb"),
        ("x-note", "a\x7fb"),
    ],
)
async def test_a_field_that_could_split_the_request_is_never_sent(name: str, value: str) -> None:
    # RFC 9110 §5.5: CR, LF and NUL are invalid in field values; RFC 9112 §2.2 on the
    # request smuggling that lenient parsing allows.
    async with scripted(ok()) as (script, port):
        p = pool(port)
        with pytest.raises(UnsendableRequest, match="separator"):
            await p.request("GET", "/x", [(name, value)], None)
        await p.close()
    assert script.requests == []
    assert script.connections == 0


async def test_a_target_with_a_space_or_line_break_is_refused() -> None:
    async with scripted(ok()) as (script, port):
        p = pool(port)
        for target in ("/a b", "/a\r\nHost: x"):
            with pytest.raises(UnsendableRequest, match="separator"):
                await p.request("GET", target, [], None)
        await p.close()
    assert script.requests == []


async def test_kept_alive_connections_are_reused() -> None:
    async with scripted(ok()) as (script, port):
        p = pool(port)
        for _ in range(3):
            assert (await fetch(p))[0] == 200
        await p.close()
    assert (script.connections, len(script.requests)) == (1, 3)


async def test_connection_close_is_honoured() -> None:
    # RFC 9112 §9.6: after "close" the connection is not used again.
    async with scripted(ok(extra=b"connection: close\r\n")) as (script, port):
        p = pool(port)
        for _ in range(2):
            assert (await fetch(p))[0] == 200
        await p.close()
    assert script.connections == 2


async def test_a_chunked_answer_is_read_whole() -> None:
    reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    async with scripted(lambda _: reply) as (script, port):
        p = pool(port)
        assert await fetch(p) == (200, b"abcde")
        assert await fetch(p) == (200, b"abcde")  # and the connection stays usable
        await p.close()
    assert script.connections == 1


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    # RFC 9112 §6.3 point 8: the body runs until the server closes.
    reply = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        assert await fetch(p) == (200, b"all of it")
        await p.close()


async def test_a_truncated_answer_is_an_error_not_a_short_body() -> None:
    # RFC 9112 §8: a message shorter than its Content-Length is incomplete.
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nabc"
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


async def test_a_second_answer_to_one_request_ends_the_connection() -> None:
    # An upstream that answers twice (desync, a smuggled answer in the body of the first)
    # must not have its second answer read as the answer to the next request.
    smuggled = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled"
    first = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" + smuggled
    async with scripted(lambda r: first if b"/one" in r else ok()(r)) as (script, port):
        p = pool(port)
        assert await fetch(p, target="/one") == (200, b"ok")
        assert await fetch(p, target="/two") == (200, b'{"a":1}')
        await p.close()
    assert script.connections == 2


async def test_content_length_beside_chunked_is_refused() -> None:
    # RFC 9112 §6.1 and §6.3 point 3: both framings at once is how answers are smuggled.
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


async def test_two_different_lengths_are_refused() -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_an_encoded_answer_is_decoded(coding: str) -> None:
    data = b'{"items":[1,2,3]}' * 100
    if coding == "gzip":
        encoded = gzip.compress(data)
    elif coding == "deflate":
        encoded = zlib.compress(data)
    else:
        squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        encoded = squeeze.compress(data) + squeeze.flush()
    name = b"gzip" if coding == "gzip" else b"deflate"
    async with scripted(ok(encoded, b"content-encoding: " + name + b"\r\n")) as (_, port):
        p = pool(port)
        answer = await p.request("GET", "/x", [], None)
        assert answer.content_length is None  # the decoded size is not known in advance
        assert await answer.read(1_000_000) == data
        answer.release()
        await p.close()


async def test_a_decompression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)  # ~20 KB on the wire
    async with scripted(ok(bomb, b"content-encoding: gzip\r\n")) as (_, port):
        p = pool(port)
        assert await fetch(p, limit=1_000_000) == (200, None)
        await p.close()


async def test_an_undecodable_coding_is_refused() -> None:
    async with scripted(ok(b"\x1b\x00", b"content-encoding: br\r\n")) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await p.request("GET", "/x", [], None)
        await p.close()


async def test_two_encodings_in_two_fields_are_refused() -> None:
    # RFC 9110 §8.4: codings are listed in the order applied; decoding one of two would
    # pass a still-encoded body on as if it were plain.
    twice = gzip.compress(gzip.compress(b'{"a":1}'))
    fields = b"content-encoding: gzip\r\ncontent-encoding: gzip\r\n"
    async with scripted(ok(twice, fields)) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await p.request("GET", "/x", [], None)
        await p.close()


async def test_a_corrupt_encoding_is_refused() -> None:
    async with scripted(ok(b"not gzip at all", b"content-encoding: gzip\r\n")) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


async def test_too_many_header_fields_are_refused() -> None:
    fields = b"".join(b"x-f%d: v\r\n" % i for i in range(MAX_HEADER_FIELDS + 1))
    async with scripted(ok(extra=fields)) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken, match="too large"):
            await fetch(p)
        await p.close()


async def test_interim_answers_are_skipped() -> None:
    # RFC 9110 §15.2: 1xx answers precede the final one; their fields are not its fields.
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
    )
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        answer = await p.request("POST", "/x", [], b"{}")
        assert answer.status == 201
        assert answer.raw_headers == [(b"content-length", b"2")]
        assert await answer.read(10) == b"ok"
        answer.release()
        await p.close()


async def test_a_switch_of_protocols_is_refused() -> None:
    reply = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await p.request("GET", "/x", [], None)
        await p.close()


async def test_a_head_answer_has_no_body_and_its_connection_is_not_reused() -> None:
    # RFC 9110 §9.3.2: the answer to HEAD announces a length but sends no body.
    async with scripted(lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n") as (
        _,
        port,
    ):
        p = pool(port)
        assert await fetch(p, "HEAD") == (200, b"")
        await asyncio.sleep(0.05)
        assert p.open_connections == 0
        await p.close()


async def test_a_silent_upstream_times_out() -> None:
    async with scripted(lambda _: b"") as (_, port):
        p = pool(port, read_timeout=0.2)
        with pytest.raises(TimeoutError):
            await p.request("GET", "/x", [], None)
        await p.close()


async def test_one_timer_serves_a_kept_alive_connection_and_still_times_out() -> None:
    """The read/total timer is left running between waits (one per connection, not one
    per wait): it must not fire on a later request early, nor miss it."""
    answered = 0

    def first_two(_: bytes) -> bytes | None:
        nonlocal answered
        answered += 1
        return ok()(b"") if answered <= 2 else b""  # then silent

    async with scripted(first_two) as (_, port):
        p = pool(port, read_timeout=0.3, total_timeout=5)
        assert (await fetch(p))[0] == 200
        [conn] = p._idle
        timer = conn._timer
        assert timer is not None
        assert (await fetch(p))[0] == 200
        assert conn._timer is timer  # the same timer, not one per wait
        await asyncio.sleep(0.2)  # the first request's deadline passes during the next
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await p.request("GET", "/x", [], None)
        waited = time.monotonic() - started
        assert 0.25 <= waited < 2.0
        assert conn.closed
        assert conn._timer is None
        await p.close()


async def test_a_trickling_answer_meets_the_total_timeout() -> None:
    async with scripted(lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nab") as (
        _,
        port,
    ):
        p = pool(port, read_timeout=5, total_timeout=0.3)
        answer = await p.request("GET", "/x", [], None)
        with pytest.raises(TimeoutError):
            await answer.read(1000)
        answer.release()
        await p.close()


async def test_a_closed_port_is_a_failed_connection() -> None:
    async with scripted(ok()) as (_, port):
        pass  # the server is gone: its port refuses
    p = pool(port)
    with pytest.raises(ConnectFailed):
        await p.request("GET", "/x", [], None)
    assert p.open_connections == 0
    await p.close()


async def test_the_pool_never_opens_more_than_its_limit() -> None:
    async with scripted(ok()) as (script, port):
        p = pool(port, limit=2)
        results = await asyncio.gather(*(fetch(p) for _ in range(10)))
        await p.close()
    assert all(status == 200 for status, _ in results)
    assert script.connections <= 2


async def test_a_waiter_for_a_connection_meets_the_total_timeout() -> None:
    async with scripted(lambda _: b"") as (_, port):
        p = pool(port, limit=1, read_timeout=5, total_timeout=0.3)
        first = asyncio.ensure_future(p.request("GET", "/x", [], None))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await p.request("GET", "/y", [], None)
        with pytest.raises(TimeoutError):
            await first
        await p.close()


async def test_data_on_an_idle_connection_ends_it() -> None:
    # An answer nobody asked for (a late 408, garbage) must never be read as the answer
    # to the next request.
    async with scripted(ok()) as (script, port):
        p = pool(port)
        assert (await fetch(p))[0] == 200
        script.writers[0].write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        await asyncio.sleep(0.05)
        assert await fetch(p) == (200, b'{"a":1}')
        await p.close()
    assert script.connections == 2


async def test_an_answer_not_read_to_its_end_closes_its_connection() -> None:
    big = b"x" * 2_000_000
    async with scripted(ok(big)) as (script, port):
        p = pool(port)
        answer = await p.request("GET", "/x", [], None)
        answer.release()  # the rest of the body is still on its way
        assert await fetch(p, limit=len(big)) == (200, big)
        await p.close()
    assert script.connections == 2


async def test_a_large_answer_streams_in_order() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: past the high-water mark, so reading pauses
    async with scripted(ok(big)) as (_, port):
        p = pool(port)
        answer = await p.request("GET", "/x", [], None)
        received = bytearray()
        async for chunk in answer.chunks():
            received += chunk
            await asyncio.sleep(0)
        answer.release()
        assert bytes(received) == big
        await p.close()


async def _gzip_of_zeros(megabytes: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1_000_000)
    return b"".join(squeeze.compress(block) for _ in range(megabytes)) + squeeze.flush()


async def test_a_decompression_bomb_never_expands_in_memory() -> None:
    # ~200 KB on the wire, 300 MB decoded: the limit must stop it one piece past the
    # limit, not after inflating everything buffered at once.
    bomb = await _gzip_of_zeros(300)
    async with scripted(ok(bomb, b"content-encoding: gzip\r\n")) as (_, port):
        p = pool(port)
        tracemalloc.start()
        try:
            assert await fetch(p, limit=1_000_000) == (200, None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await p.close()
    assert peak < 20_000_000


async def test_a_cut_compressed_stream_is_an_error_not_a_shorter_body() -> None:
    encoded = gzip.compress(b'{"items":[1,2,3]}' * 50)
    half = encoded[: len(encoded) // 2]
    async with scripted(ok(half, b"content-encoding: gzip\r\n")) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


@pytest.mark.parametrize("tail", [gzip.compress(b"more"), b"GARBAGE"])
async def test_bytes_after_the_compressed_stream_are_refused(tail: bytes) -> None:
    async with scripted(ok(gzip.compress(b'{"a":1}') + tail, b"content-encoding: gzip\r\n")) as (
        _,
        port,
    ):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


async def test_a_single_endless_header_field_is_cut_off_early() -> None:
    # One field growing across many reads never completes, so no per-field check could
    # see it: the bytes fed without progress are bounded instead.
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nx-big: ")
        for _ in range(200):  # 12.8 MB, if nobody stopped it
            writer.write(b"a" * 65_536)
            await writer.drain()
        writer.write(b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()

    async with handled(endless) as port:
        p = pool(port, read_timeout=30, total_timeout=30)
        with pytest.raises(UpstreamBroken, match="too large"):
            await p.request("GET", "/x", [], None)
        await p.close()


async def test_a_reset_in_a_body_without_a_length_is_an_error() -> None:
    # RFC 9112 §6.3 point 8 ends such a body at the close; a reset is no clean close.
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\n\r\n{"items": [1,2')
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async with handled(cut) as port:
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


async def test_a_body_without_a_length_over_tls_is_refused(tmp_path: Path) -> None:
    # Over TLS a close without close_notify (RFC 8446 §6.1) reads like a clean close, so
    # a body framed by the close could be truncated unnoticed.
    ca = TestCA(tmp_path)
    issued = ca.issue("127.0.0.1", server=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(issued.cert, issued.key)
    client_tls = ssl.create_default_context(cafile=str(ca.cert_path))

    async def unframed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with handled(unframed, server_tls) as port:
        p = Pool(
            host="127.0.0.1",
            port=port,
            tls=client_tls,
            limit=1,
            keepalive_timeout=30,
            connect_timeout=2,
            read_timeout=2,
            total_timeout=5,
        )
        with pytest.raises(UpstreamBroken, match="without a length"):
            await fetch(p)
        await p.close()


async def test_trailer_fields_never_join_the_header_section() -> None:
    # RFC 9110 §6.5: trailers are not headers; forwarding them as headers would let a
    # body-time field (a Location, a second Content-Type) pass as part of the head.
    reply = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n"
        b"\r\n2\r\n{}\r\n0\r\ncontent-type: text/html\r\nlocation: /phish\r\n\r\n"
    )
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        answer = await p.request("GET", "/x", [], None)
        assert await answer.read(100) == b"{}"
        assert answer.raw_headers == [
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"application/json"),
        ]
        answer.release()
        await p.close()


@pytest.mark.parametrize("coding", [b"identity", b"gzip, chunked", b"chunked, chunked"])
async def test_a_transfer_coding_other_than_chunked_is_refused(coding: bytes) -> None:
    # llhttp frames by the final coding only (RFC 9112 §6.3 point 4); a coding before it
    # would pass on undecoded.
    reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: " + coding + b"\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


@pytest.mark.parametrize("status", [b"000", b"099", b"600", b"999"])
async def test_a_status_outside_the_final_range_is_refused(status: bytes) -> None:
    # RFC 9110 §15: final status codes are 200-599 here (1xx are interim).
    reply = b"HTTP/1.1 " + status + b" X\r\ncontent-length: 2\r\n\r\nok"
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port, read_timeout=1)
        with pytest.raises(UpstreamBroken):
            await fetch(p)
        await p.close()


async def test_a_bodiless_answer_may_name_any_coding() -> None:
    # A 304 has no body (RFC 9110 §15.4.5): its coding describes the stored one.
    reply = b'HTTP/1.1 304 Not Modified\r\ncontent-encoding: br\r\netag: "v1"\r\n\r\n'
    async with scripted(lambda _: reply) as (_, port):
        p = pool(port)
        assert await fetch(p) == (304, b"")
        await p.close()


async def test_the_total_timeout_holds_while_the_upstream_keeps_sending() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.005)

    async with handled(endless) as port:
        p = pool(port, read_timeout=5, total_timeout=0.3)
        answer = await p.request("GET", "/x", [], None)
        with pytest.raises(TimeoutError):
            async for _ in answer.chunks():
                pass
        answer.release()
        await p.close()


async def test_a_cancel_just_after_connecting_counts_the_connection_out_once() -> None:
    # The call is cancelled (the app went away) in the moment between the connection
    # being made and the caller resuming: the pool's count must not drift either way.
    async with scripted(ok()) as (_, port):
        cancelled: list[asyncio.Task[object]] = []

        def opener_cancelling_on_connect() -> Opener:
            async def opener(
                factory: Callable[[], asyncio.Protocol],
                host: str,
                port: int,
                tls: ssl.SSLContext | None,
            ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
                task = asyncio.current_task()
                assert task is not None

                def cancelling() -> asyncio.Protocol:
                    if not cancelled:
                        cancelled.append(task)
                        task.cancel()
                    return factory()

                return await open_tcp(cancelling, host, port, tls)

            return opener

        p = Pool(
            host="127.0.0.1",
            port=port,
            tls=None,
            limit=1,
            keepalive_timeout=30,
            connect_timeout=2,
            read_timeout=2,
            total_timeout=5,
            opener=opener_cancelling_on_connect(),
        )
        with pytest.raises(asyncio.CancelledError):
            await p.request("GET", "/x", [], None)
        await asyncio.sleep(0.05)
        assert p.open_connections == 0
        # The one slot is free: two calls in turn both go through, never two at once.
        assert (await fetch(p))[0] == 200
        assert (await fetch(p))[0] == 200
        assert p.open_connections == 1
        await p.close()


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="aZ09-_!#.~ :\t\r\n\x00\x7f()é", max_size=5),
            st.text(alphabet="aZ09 ,;=\t\r\n\x00\x0b\x7fé", max_size=5),
        ),
        max_size=5,
    )
)
def test_fields_are_checked_as_one_search_per_field_would(
    headers: list[tuple[str, str]],
) -> None:
    per_field = all(
        _TOKEN.fullmatch(name) is not None and _CONTROL.search(value) is None
        for name, value in headers
    )
    assert _fields_sendable(headers) == per_field

"""HTTP/1.1 to one upstream: a keep-alive pool of connections that write requests as
bytes and read answers with httptools (llhttp, the parser Node.js uses).

The gateway's upstream call is its hot path, and a general client (aiohttp) spent more
per request than the rest of the gateway together: URL objects, header multidicts,
tracing hooks, a timer rescheduled on every read. This client does what a reverse proxy
needs and nothing else:

- one origin, fixed by configuration: no redirects, cookies, proxies or URL parsing;
- requests written in one buffer; header names and values with CR, LF or NUL refused
  (no request splitting), the framing fields (Host, Content-Length, Transfer-Encoding,
  Connection and the other hop-by-hop names) written by the client only;
- answers parsed strictly (llhttp refuses a Content-Length beside Transfer-Encoding,
  bad chunk sizes and oversized fields), headers bounded in count and size, bodies
  decoded from gzip or deflate and bounded after decoding (no decompression bomb);
- a connection goes back to the pool only after a whole answer with keep-alive; any
  failure, timeout or unread remainder closes it;
- timeouts: connect, between reads, and for the whole call.

Errors: ``ConnectFailed`` when no connection was made (nothing was sent: a retry is safe
for any method), ``UpstreamBroken`` when the connection or the answer failed part way,
``TimeoutError`` when a timeout ran out.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, cast

import httptools

# Framing and hop-by-hop fields: the client writes these itself, never from the caller
# (RFC 9112 §6 and §7; RFC 9110 §7.6.1).
_FRAMING = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# llhttp's own limits stop a single field at 80 KiB; the whole head is held smaller.
MAX_HEADER_FIELDS = 200
MAX_HEADER_BYTES = 65_536
# Above this many unread bytes the connection stops reading until the reader catches up.
_HIGH_WATER = 262_144
_CHUNK = 65_536


class ConnectFailed(ConnectionError):
    """No connection to the upstream: refused, unreachable, or the TLS handshake failed.
    Nothing was sent."""


class UpstreamBroken(ConnectionError):
    """The connection failed or the answer broke HTTP/1.1 after the request was (maybe)
    sent."""


class Opener(Protocol):
    """Makes one connection: ``asyncio``'s ``create_connection`` over TCP, or an
    in-process pair in tests."""

    def __call__(
        self,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        ssl: ssl_module.SSLContext | None,
    ) -> Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]]: ...


async def open_tcp(
    factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    ssl: ssl_module.SSLContext | None,
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    loop = asyncio.get_running_loop()
    return await loop.create_connection(
        factory, host, port, ssl=ssl, server_hostname=host if ssl is not None else None
    )


def _bad_field(text: str) -> bool:
    return "\r" in text or "\n" in text or "\x00" in text


class _Decoder:
    """Content-Encoding gzip or deflate, decoded as it arrives."""

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        # 47 = 32 + 15: a zlib or gzip header, detected; deflate may be sent raw, too.
        self._inflate = zlib.decompressobj(47 if not self._deflate else zlib.MAX_WBITS)
        self._first = True

    def feed(self, data: bytes) -> bytes:
        try:
            if self._deflate and self._first:
                self._first = False
                if data and data[0] & 0x0F != 8:  # no zlib header: a raw deflate stream
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inflate.decompress(data)
        except zlib.error as exc:
            raise UpstreamBroken("the answer's encoding does not decode") from exc

    def end(self) -> bytes:
        try:
            return self._inflate.flush()
        except zlib.error as exc:
            raise UpstreamBroken("the answer's encoding does not decode") from exc


class Connection(asyncio.Protocol):
    """One connection and the answer it is reading."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        # A request is out and its answer not yet released: data at any other time is
        # unasked for (a late 408, garbage) and ends the connection.
        self.in_flight = False
        self.head_only = False
        self._reset_answer()

    def _reset_answer(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.length: int | None = None
        self.coding = b""
        self.chunked = False
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self._paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_flight:
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"the answer is not HTTP/1.1: {type(exc).__name__}"))
        except UpstreamBroken as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.complete and self._reads_to_close():
            # An answer without a length ends with the connection (RFC 9112 §6.3).
            self.complete = True
            self._wake()
        elif not self.complete:
            self._fail(UpstreamBroken("the upstream closed the connection"), close=False)
        self._pool.lost(self)

    def pause_writing(self) -> None:
        pass  # requests are bounded by the body limit; nothing waits to write

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.head_done:
            # A second answer to one request: whatever it is (a desync, a smuggled
            # answer), it must not become the answer to the next request.
            raise UpstreamBroken("more than one answer to a request")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if len(self.headers) >= MAX_HEADER_FIELDS or self.head_bytes > MAX_HEADER_BYTES:
            raise UpstreamBroken("the answer's header is too large")
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self.length = int(value)  # llhttp has checked it is digits, and only one
        elif lowered == b"content-encoding":
            # Two fields are two codings applied in turn (RFC 9110 §8.4): only one is
            # decoded here, so the pair is refused rather than half decoded.
            self.coding = b"several" if self.coding else value.strip().lower()
        elif lowered == b"transfer-encoding":
            self.chunked = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise UpstreamBroken("the upstream switched protocols")
            # An interim answer (100, 103): the real one follows on this connection.
            self.headers = []
            self.head_bytes = 0
            self.length = None
            self.coding = b""
            self.chunked = False
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.head_done = True
        if self.head_only:
            self.complete = True
            self.keep_alive = False  # a HEAD answer's announced body must not be read
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.status == 0 or self.complete:
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of an interim answer
        self.complete = True
        self._wake()

    # reading, for Answer

    def _reads_to_close(self) -> bool:
        return (
            self.length is None
            and not self.chunked
            and self.status not in (204, 304)
            and not self.head_only
        )

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException, *, close: bool = True) -> None:
        if self._error is None:
            self._error = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if close:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    async def wait(self, deadline: float, read_timeout: float) -> None:
        """Until something more arrives; ``TimeoutError`` at the read or total limit."""
        if self._error is not None:
            raise self._error
        waiter = self._loop.create_future()
        self._waiter = waiter
        now = time.monotonic()
        timer = self._loop.call_at(
            self._loop.time() + min(read_timeout, deadline - now), self._time_out
        )
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _time_out(self) -> None:
        self._fail(TimeoutError())

    def take(self) -> bytes:
        data = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        self.buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return data

    def send(self, head: bytes, body: bytes | None, head_only: bool) -> None:
        self._reset_answer()
        self.head_only = head_only
        self.in_flight = True
        self._error = None
        assert self.transport is not None
        if body:
            self.transport.write(head + body)
        else:
            self.transport.write(head)


class Answer:
    """An upstream's answer: status and headers as received, the body read on demand."""

    __slots__ = ("_conn", "_deadline", "_decoder", "_pool", "_read_timeout", "_released")

    def __init__(self, pool: Pool, conn: Connection, deadline: float) -> None:
        self._pool = pool
        self._conn = conn
        self._deadline = deadline
        self._read_timeout = pool.read_timeout
        self._released = False
        coding = conn.coding
        self._decoder: _Decoder | None = None
        if coding not in (b"", b"identity"):
            if coding in (b"gzip", b"x-gzip"):
                self._decoder = _Decoder("gzip")
            elif coding == b"deflate":
                self._decoder = _Decoder("deflate")
            else:
                # Shaping and owner checks must read the body: what cannot be decoded
                # cannot be checked, and is not passed on undecoded either.
                conn.close()
                raise UpstreamBroken("the answer's content coding is not supported")

    @property
    def status(self) -> int:
        return self._conn.status

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._conn.headers

    def header(self, name: bytes) -> str | None:
        """The first field named ``name`` (lower case), as text."""
        for field, value in self._conn.headers:
            if field.lower() == name:
                return value.decode("latin-1")
        return None

    @property
    def content_length(self) -> int | None:
        """The body's size as it will be read (unknown when it arrives encoded)."""
        return None if self._decoder is not None else self._conn.length

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded."""
        conn = self._conn
        decoder = self._decoder
        while True:
            if conn.body:
                data = conn.take()
                if decoder is not None:
                    data = decoder.feed(data)
                if data:
                    yield data
                continue
            if conn.complete:
                if decoder is not None and (rest := decoder.end()):
                    yield rest
                return
            await conn.wait(self._deadline, self._read_timeout)

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or None when it is larger than ``limit`` bytes (decoded)."""
        conn = self._conn
        if conn.complete and self._decoder is None:
            if conn.buffered > limit:
                return None
            return conn.take() if conn.body else b""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Back to the pool after a whole answer with keep-alive; closed otherwise."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.in_flight = False
        if not (conn.complete and conn.keep_alive and not conn.body):
            conn.close()
        self._pool.put(conn)


class Pool:
    """Keep-alive connections to one origin, at most ``limit`` open at once."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: ssl_module.SSLContext | None,
        limit: int,
        keepalive_timeout: float,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        opener: Opener = open_tcp,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.host = host
        self.port = port
        self.tls = tls
        self.limit = limit
        self.keepalive_timeout = keepalive_timeout
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self._opener = opener
        default_port = 443 if tls is not None else 80
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal (RFC 9110 §7.2)
        authority = name if port == default_port else f"{name}:{port}"
        self._host_line = f"\r\nhost: {authority}\r\n"
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self.loop = asyncio.get_running_loop()

    @property
    def open_connections(self) -> int:
        return self._open

    def head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None
    ) -> bytes:
        """The request line and header section; ``ValueError`` for a field that could
        split the request."""
        if _bad_field(target) or " " in target or _bad_field(method) or " " in method:
            raise ValueError("request target or method holds a separator")
        lines = [method, " ", target, " HTTP/1.1", self._host_line]
        for name, value in headers:
            lowered = name.lower()
            if lowered in _FRAMING:
                continue
            if _bad_field(name) or ":" in name or " " in name or _bad_field(value):
                raise ValueError("header field holds a separator")
            lines += (name, ": ", value, "\r\n")
        if body:
            lines += ("content-length: ", str(len(body)), "\r\n")
        elif method in _BODY_METHODS:
            lines.append("content-length: 0\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def request(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None
    ) -> Answer:
        """Send and wait for the answer's head; the caller must ``release()`` the answer."""
        try:
            head = self.head(method, target, headers, body)
        except UnicodeEncodeError as exc:
            raise ValueError("header field is not Latin-1") from exc
        deadline = time.monotonic() + self.total_timeout
        conn = await self._acquire(deadline)
        try:
            conn.send(head, body, method == "HEAD")
            while not conn.head_done:
                await conn.wait(deadline, self.read_timeout)
            return Answer(self, conn, deadline)
        except BaseException:
            conn.in_flight = False
            conn.close()
            raise

    async def _acquire(self, deadline: float) -> Connection:
        if self._closed:
            raise ConnectFailed("the pool is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if time.monotonic() - conn.idle_since > self.keepalive_timeout:
                conn.close()
                continue
            return conn
        while self._open >= self.limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(
                    self.loop.time() + max(0.0, deadline - time.monotonic())
                ):
                    await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the turn this waiter was given
                raise
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
        self._open += 1
        try:
            return await self._connect(deadline)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _connect(self, deadline: float) -> Connection:
        budget = min(self.connect_timeout, max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(budget):
                _, protocol = await self._opener(
                    lambda: Connection(self), self.host, self.port, self.tls
                )
        except TimeoutError:
            raise
        except (OSError, ssl_module.SSLError) as exc:
            raise ConnectFailed(type(exc).__name__) from exc
        assert isinstance(protocol, Connection)
        return protocol

    def put(self, conn: Connection) -> None:
        """A connection done with: kept idle when open, counted out when closed."""
        if conn.closed or self._closed:
            conn.close()  # counted out when its transport reports the end (lost)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake_one()

    def lost(self, conn: Connection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the pool is closed"))
        self._waiters.clear()
        # Let the transports report their end.
        await asyncio.sleep(0)

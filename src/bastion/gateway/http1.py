"""HTTP/1.1 to one upstream: a keep-alive pool of connections that write requests as
bytes and read answers with httptools (llhttp, the parser Node.js uses).

The gateway's upstream call is its hot path, and a general client (aiohttp) spent more
per request than the rest of the gateway together: URL objects, header multidicts,
tracing hooks, a timer rescheduled on every read. This client does what a reverse proxy
needs and nothing else:

- one origin, fixed by configuration: no redirects, cookies, proxies or URL parsing;
- requests written in one buffer; a field name that is not a token or a value with a
  control character (CR, LF, NUL...) is refused (no request splitting), and the framing
  fields (Host, Content-Length, Transfer-Encoding, Connection and the other hop-by-hop
  names) are written by the client only;
- answers parsed strictly (llhttp refuses a Content-Length beside Transfer-Encoding,
  bad chunk sizes, obs-fold and bare LF), the head bounded in fields and bytes (a single
  field included, as it arrives), a status outside 200-599 or a transfer coding other
  than chunked refused, trailers dropped, bodies decoded from gzip or deflate in bounded
  pieces so that a size limit stops a decompression bomb before it expands, a truncated
  body (short of its length, a reset, a cut compressed stream, a length-less body over
  TLS) an error, never a short answer;
- a connection goes back to the pool only after a whole answer with keep-alive; any
  failure, timeout or unread remainder closes it;
- timeouts: connect, between reads, and for the whole call.

Errors: ``ConnectFailed`` when no connection was made (nothing was sent: a retry is safe
for any method), ``UpstreamBroken`` when the connection or the answer failed part way,
``TimeoutError`` when a timeout ran out.
"""

from __future__ import annotations

import asyncio
import re
import ssl as ssl_module
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
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
MAX_HEADER_FIELDS = 200
# The whole head, and the bytes fed without the parser finishing anything (one field
# growing: httptools joins its pieces by concatenation, quadratic in its size).
MAX_HEADER_BYTES = 65_536
# Above this many unread bytes the connection stops reading until the reader catches up;
# each buffered piece also counts what holding it costs, so tiny chunks cannot hide.
_HIGH_WATER = 262_144
_PIECE_COST = 64
# A wait's timer counts as due this close to its deadline: event loop clocks tick in
# milliseconds, and a timer moved by less would fire again at once.
_TIMER_SLACK = 0.001
# Decoded bodies come out in pieces of at most this size.
_CHUNK = 65_536
# RFC 9110 §5.1 (field names are tokens) and §5.5 (no CTL but HTAB in a value).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _fields_sendable(headers: Sequence[tuple[str, str]]) -> bool:
    """Every name a token and no value with a control character but tab: one search over
    the names joined by a token character and one over the values joined by a tab, which
    accept exactly what a search per field accepts (a request has several fields)."""
    if not headers:
        return True
    names = [name for name, _ in headers]
    return (
        all(names)
        and _TOKEN.fullmatch("a".join(names)) is not None
        and _CONTROL.search("\t".join([value for _, value in headers])) is None
    )


class ConnectFailed(ConnectionError):
    """No connection to the upstream: refused, unreachable, or the TLS handshake failed.
    Nothing was sent."""


class UpstreamBroken(ConnectionError):
    """The connection failed or the answer broke HTTP/1.1 after the request was (maybe)
    sent."""


class UnsendableRequest(ValueError):
    """A request field that could split the request: never sent."""


class Opener(Protocol):
    """Makes one connection: ``asyncio``'s ``create_connection`` over TCP, or an
    in-process pair in tests."""

    def __call__(
        self,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        ssl: ssl_module.SSLContext | None,
        /,
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


_UNDECODABLE = "the answer's encoding does not decode"


class _Decoder:
    """Content-Encoding gzip or deflate, decoded as it arrives, in pieces of at most
    ``_CHUNK`` bytes: a caller's size limit stops a bomb after one piece too many, not
    after it has expanded in memory."""

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        # 47 = 32 + 15: a zlib or gzip header, detected; deflate may be sent raw, too.
        self._inflate = zlib.decompressobj(47 if not self._deflate else zlib.MAX_WBITS)
        self._first = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        inflate = self._inflate
        if self._deflate and self._first and data:
            self._first = False
            if data[0] & 0x0F != 8:  # no zlib header: a raw deflate stream
                inflate = self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        while data:
            if inflate.eof:
                # Bytes after the end of the stream: a second gzip member or garbage,
                # neither of which is passed on as if the first were all of it.
                raise UpstreamBroken(_UNDECODABLE)
            try:
                piece = inflate.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise UpstreamBroken(_UNDECODABLE) from exc
            data = inflate.unconsumed_tail or inflate.unused_data
            if piece:
                yield piece

    def end(self) -> None:
        """The body is over: the compressed stream must be, too (a cut one is an
        error, not a shorter body)."""
        if not self._inflate.eof:
            raise UpstreamBroken(_UNDECODABLE)


class Connection(asyncio.Protocol):
    """One connection and the answer it is reading."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        # Counted in the pool's open connections until counted out, exactly once.
        self.counted = True
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        # The read/total deadline of the wait in progress (loop time), and the one timer
        # that enforces it: left running between waits and moved only when it would fire
        # late, since scheduling and cancelling a timer per wait cost more than the rest
        # of the wait. It fires about once per read timeout on a busy connection.
        self._due: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # A request is out and its answer not yet released: data at any other time is
        # unasked for (a late 408, garbage) and ends the connection.
        self.in_flight = False
        self.head_only = False
        # Parser callbacks so far, and bytes fed since the last one (see data_received).
        self._progress = 0
        self._stalled = 0
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
        mark = self._progress
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A callback's own refusal arrives wrapped: name it, not the wrapper.
            cause = exc.__context__
            if isinstance(cause, UpstreamBroken):
                self._fail(cause)
            else:
                self._fail(UpstreamBroken(f"the answer is not HTTP/1.1: {type(exc).__name__}"))
            return
        if self._progress != mark:
            self._stalled = 0
            return
        self._stalled += len(data)
        if self._stalled > MAX_HEADER_BYTES:
            self._fail(UpstreamBroken("a field of the answer is too large"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self.head_done and not self.complete and exc is None and self._reads_to_close():
            # An answer without a length ends with the connection (RFC 9112 §6.3), when
            # the connection ends cleanly.
            self.complete = True
            self._wake()
        elif not self.complete:
            self._fail(UpstreamBroken("the upstream closed the connection"), close=False)
        self._pool.lost(self)

    def pause_writing(self) -> None:
        pass  # requests are bounded by the body limit; nothing waits to write

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._progress += 1
        if self.head_done:
            # A second answer to one request: whatever it is (a desync, a smuggled
            # answer), it must not become the answer to the next request.
            raise UpstreamBroken("more than one answer to a request")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._progress += 1
        self.head_bytes += len(name) + len(value) + 4
        if len(self.headers) >= MAX_HEADER_FIELDS or self.head_bytes > MAX_HEADER_BYTES:
            raise UpstreamBroken("the answer's header is too large")
        if self.head_done:
            return  # a trailer field: never merged into the header section
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self.length = int(value)  # llhttp has checked it is digits, and only one
        elif lowered == b"content-encoding":
            # Two fields are two codings applied in turn (RFC 9110 §8.4): only one is
            # decoded here, so the pair is refused rather than half decoded.
            self.coding = b"several" if self.coding else value.strip().lower()
        elif lowered == b"transfer-encoding":
            # llhttp frames by the last coding only; anything but a single "chunked" is
            # a coding this client would pass on undecoded, or read to the close.
            if self.chunked or value.strip().lower() != b"chunked":
                raise UpstreamBroken("the answer's transfer coding is not supported")
            self.chunked = True

    def on_headers_complete(self) -> None:
        self._progress += 1
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
        if not 200 <= status <= 599:
            raise UpstreamBroken("the answer's status is not a status")
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.head_done = True
        if self._reads_to_close() and self._pool.tls is not None:
            # Over TLS a close without close_notify looks like a clean one here, so a
            # body that ends with the connection could be cut short unnoticed.
            raise UpstreamBroken("an answer without a length over TLS")
        if self.head_only:
            self.complete = True
            self.keep_alive = False  # a HEAD answer's announced body must not be read
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._progress += 1
        if not self.head_done or self.complete:
            return
        self.body.append(body)
        self.buffered += len(body) + _PIECE_COST
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._progress += 1
        if not self.head_done:
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

    def count_out(self) -> bool:
        """True the first time: the pool's count of open connections drops by one."""
        counted, self.counted = self.counted, False
        return counted

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def wait(self, deadline: float, read_timeout: float) -> None:
        """Until something more arrives; ``TimeoutError`` at the read or total limit."""
        if self._error is not None:
            raise self._error
        loop = self._loop
        waiter = loop.create_future()
        self._waiter = waiter
        due = self._due = loop.time() + min(read_timeout, deadline - time.monotonic())
        if self._timer is None or self._timer_at > due:
            self._stop_timer()
            self._timer_at = due
            self._timer = loop.call_at(due, self._check_due)
        try:
            await waiter
        finally:
            self._waiter = None
            self._due = None

    def _check_due(self) -> None:
        self._timer = None
        due = self._due
        if due is None or self.closed:
            return  # no wait in progress: the next one starts a timer
        if self._loop.time() < due - _TIMER_SLACK:
            # A later wait than the one this timer was started for.
            self._timer_at = due
            self._timer = self._loop.call_at(due, self._check_due)
            return
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
        if self.closed:
            raise UpstreamBroken("the connection is closed")
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
        bodiless = conn.head_only or conn.status in (204, 304)
        if coding not in (b"", b"identity") and not bodiless:
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
        """The body as it arrives, decoded; ``TimeoutError`` past the call's total time,
        even while the upstream keeps sending."""
        conn = self._conn
        decoder = self._decoder
        while True:
            if time.monotonic() > self._deadline:
                conn.close()
                raise TimeoutError
            if conn.body:
                data = conn.take()
                if decoder is None:
                    yield data
                else:
                    for piece in decoder.feed(data):
                        yield piece
                continue
            if conn.complete:
                if decoder is not None:
                    decoder.end()
                return
            await conn.wait(self._deadline, self._read_timeout)

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or None when it is larger than ``limit`` bytes (decoded)."""
        conn = self._conn
        if conn.complete and self._decoder is None and conn.buffered <= limit:
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
        """The request line and header section; ``UnsendableRequest`` for a field that
        could split the request."""
        if not _TOKEN.fullmatch(method) or " " in target or _CONTROL.search(target):
            raise UnsendableRequest("request target or method holds a separator")
        if not _fields_sendable(headers):
            raise UnsendableRequest("header field holds a separator")
        lines = [method, " ", target, " HTTP/1.1", self._host_line]
        for name, value in headers:
            if name.lower() in _FRAMING:
                continue
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
            raise UnsendableRequest("header field is not Latin-1") from exc
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
        made: list[Connection] = []

        def factory() -> Connection:
            made.append(Connection(self))
            return made[-1]

        try:
            return await self._connect(deadline, factory)
        except BaseException:
            # A cancellation can land after the connection was made: close it here (the
            # loop may not) and count it out once, whichever of this and lost() runs first.
            made_one = made[-1] if made else None
            if made_one is not None:
                made_one.close()
            if made_one is None or made_one.count_out():
                self._open -= 1
                self._wake_one()
            raise

    async def _connect(self, deadline: float, factory: Callable[[], Connection]) -> Connection:
        budget = min(self.connect_timeout, max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(budget):
                _, protocol = await self._opener(factory, self.host, self.port, self.tls)
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
        if conn.count_out():
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

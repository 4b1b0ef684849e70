"""The upstream call (``bastion.gateway.upstream``): the path rendered from the route's
template with canonical parameters, the upstream's timeouts, breaker and retries, no
redirects. A 5xx or 401 is the gateway's failure, never passed on (a 401 means the
gateway's credential was refused, not the app's). Answers a later step must read are
read whole (within the upstream's size limit); others are streamed to the app."""

from __future__ import annotations

import logging

from bastion.errors import UpstreamFailure
from bastion.gateway.exchange import Answer, Exchange, send_whole
from bastion.gateway.http1 import Answer as UpstreamAnswer
from bastion.gateway.routes import Route
from bastion.gateway.shaping import response_headers
from bastion.gateway.steps.base import Step
from bastion.gateway.steps.ownership import sent_credential
from bastion.gateway.upstream import UNAVAILABLE, read_limited

log = logging.getLogger("bastion.gateway")

# Answers up to this size with a Content-Length are read whole, not streamed.
WHOLE_BODY_BYTES = 65_536


class UpstreamCall(Step):
    name = "upstream call"

    async def request(self, ex: Exchange) -> None:
        route = ex.route
        upstream = route.upstream
        path = route.target.render(ex.params)
        ex.called = True
        async with upstream.request(
            ex.method,
            path,
            ex.query_string,
            ex.outgoing,
            ex.forwarded_body(),
            keyed=ex.claim is not None,
        ) as response:
            status = response.status
            if status >= 500 or status == 401:
                log.warning("upstream %s answered %d", upstream.name, status)
                if status == 401 and upstream.credential is not None:
                    upstream.credential.rejected(sent_credential(ex))
                raise UpstreamFailure(UNAVAILABLE)
            ex.status = status
            reshaped = route.allow is not None or route.settings.pagination is not None
            headers = response_headers(response.raw_headers, reshaped=reshaped)
            whole = ex.claim is not None or (200 <= status < 300 and route.buffers_answer)
            if not whole:
                ex.started = True
                ex.answered = True
                await _stream(ex, response, headers + ex.extra, route)
                return
            payload = await read_limited(response, upstream.settings.max_response_bytes)
        ex.answer = Answer(status, headers, payload, upstream.name)


async def _stream(
    ex: Exchange, response: UpstreamAnswer, headers: list[tuple[bytes, bytes]], route: Route
) -> None:
    limit = route.upstream.settings.max_response_bytes
    length = response.content_length
    if length is not None and length > limit:
        raise UpstreamFailure(UNAVAILABLE)
    if length is not None and length <= WHOLE_BODY_BYTES:
        # A small answer of known size goes out in one message with its length.
        body = await response.read(length)
        if body is None:  # more than it declared: llhttp does not let this happen
            raise UpstreamFailure(UNAVAILABLE)
        await send_whole(ex.send, response.status, headers, body)
        return
    send = ex.send
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    size = 0
    async for chunk in response.chunks():
        size += len(chunk)
        if size > limit:
            # The status line is gone; cut the connection rather than deliver a partial
            # answer as if it were whole.
            raise RuntimeError("upstream answer over the size limit")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

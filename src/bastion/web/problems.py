"""RFC 9457 problem details, the error format of every non-OAuth endpoint."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"


def problem_body(
    status: int,
    *,
    detail: str | None = None,
    title: str | None = None,
    type: str = "about:blank",
    correlation_id: str | None = None,
    **extensions: Any,
) -> bytes:
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if correlation_id is not None:
        body["correlation_id"] = correlation_id
    body.update(extensions)
    return orjson.dumps(body)


def problem_response(
    status: int,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Response:
    return Response(
        problem_body(status, **fields),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )

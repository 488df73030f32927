"""What the server tells a person: a request id on every answer (the client's ``X-Request-ID`` or a
new one, echoed back), one log line per 4xx/5xx answer and per bad row, and Prometheus counters per
route and status on ``/metrics``.

The peers log only a status code (OpenRLHF, slime) and retry, so the server's log is where the
message "row N: missing field ..." reaches someone; the request id ties that line to the client's.
"""

from __future__ import annotations

import http
import logging
import re
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger("grpo_plugins.serve")

REQUEST_ID = "x-request-id"
# a client's id goes into our log line and header as sent, so only plain ids are taken as they are
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
ROUTES = ("/score", "/get_reward", "/slime", "/health", "/rewards", "/metrics")


class Metrics:
    """This app's counters, in a registry of its own so two apps in one process never share one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.responses = Counter("grpo_serve_responses", "HTTP answers by route and status code",
                                 ["route", "status"], registry=self.registry)
        self.rows = Counter("grpo_serve_rows", "scored rows by route and row status (ok | no_label | error)",
                            ["route", "status"], registry=self.registry)


def route_label(path: str) -> str:
    """The path when it is one of ours, else ``other`` (an unknown path must not grow a new series)."""
    return path if path in ROUTES else "other"


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is a plain id, else a new one."""
    for name, value in headers:
        if name.lower() == REQUEST_ID.encode():
            text = value.decode("latin-1").strip()
            if _PLAIN_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


def note_error(scope: dict, body: dict[str, Any]) -> None:
    """Remember a failed answer's body so the middleware's log line carries its row and message."""
    scope.setdefault("state", {})["error_body"] = body


def log_rows(rid: str, route: str, statuses: list, metrics: Metrics) -> None:
    """Count every row by status and log each bad one, one line with the request id and row."""
    for i, st in enumerate(statuses):
        metrics.rows.labels(route, st.status).inc()
        if st.status != "ok":
            log.warning("request %s %s 200 row %d %s: %s", rid, route, i, st.status, st.error)


class Observe:
    """ASGI middleware: the request id in and out, the answer counted, a 4xx/5xx logged once."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id(scope.get("headers", []))
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = [500]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = dict(message, headers=[*message.get("headers", []), (REQUEST_ID.encode(), rid.encode())])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_label(scope.get("path", ""))
            self.metrics.responses.labels(route, str(status[0])).inc()
            if status[0] >= 400:
                body = state.get("error_body") or {}
                row = f" row {body['row']}" if body.get("row") is not None else ""
                log.warning("request %s %s %s %d%s: %s", rid, scope.get("method", ""), scope.get("path", ""),
                            status[0], row, body.get("error") or _phrase(status[0]))


def _phrase(status: int) -> str:
    """The status's reason phrase, for answers our routes did not write (404, 405 from the router)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "(no message)"

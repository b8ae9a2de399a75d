"""Count API requests and render Prometheus text exposition (no client library)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fleet.api import guard

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from fleet.api.queries import StoreMetrics

SOLVE_STATUSES = ("optimal", "feasible", "infeasible", "error")
"""Solve statuses exported as one gauge each (1 for the newest schedule's status)."""


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class ApiMetrics:
    """Request counters and the ingest-rate estimate between scrapes."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.request_seconds: dict[tuple[str, str], float] = defaultdict(float)
        self._last_stored: tuple[float, int] | None = None
        self.ingest_rate_per_s = 0.0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests[(method, route, status)] += 1
        self.request_seconds[(method, route)] += seconds

    def render(self, store: StoreMetrics, *, subscribers: int, now_s: float) -> str:
        """Return the metrics in Prometheus text format 0.0.4."""
        if self._last_stored is not None and now_s > self._last_stored[0]:
            dt_s = now_s - self._last_stored[0]
            self.ingest_rate_per_s = max(
                0.0, (store.stored_total - self._last_stored[1]) / dt_s
            )
        self._last_stored = (now_s, store.stored_total)
        lines = [
            "# HELP bessfleet_ingest_stored_total Telemetry rows stored.",
            "# TYPE bessfleet_ingest_stored_total counter",
            f"bessfleet_ingest_stored_total {store.stored_total}",
            "# HELP bessfleet_ingest_duplicates_total Duplicate telemetry rows absorbed.",
            "# TYPE bessfleet_ingest_duplicates_total counter",
            f"bessfleet_ingest_duplicates_total {store.duplicates_total}",
            "# HELP bessfleet_ingest_rate_per_second Rows stored per second since the previous scrape.",
            "# TYPE bessfleet_ingest_rate_per_second gauge",
            f"bessfleet_ingest_rate_per_second {self.ingest_rate_per_s:.3f}",
            "# HELP bessfleet_ingest_lag_seconds Age of the newest stored sample per site.",
            "# TYPE bessfleet_ingest_lag_seconds gauge",
        ]
        for site, ts_ms in sorted(store.newest_ts_ms.items()):
            lag = max(0.0, now_s - ts_ms / 1000.0)
            lines.append(f"bessfleet_ingest_lag_seconds{_labels(site=site)} {lag:.3f}")
        lines += [
            "# HELP bessfleet_quarantine_total Quarantined telemetry messages per reason.",
            "# TYPE bessfleet_quarantine_total gauge",
        ]
        total_quarantine = 0
        for reason, n in sorted(store.quarantine_by_reason.items()):
            total_quarantine += n
            lines.append(f"bessfleet_quarantine_total{_labels(reason=reason)} {n}")
        lines.append(f'bessfleet_quarantine_total{{reason="all"}} {total_quarantine}')
        lines += [
            "# HELP bessfleet_solve_seconds Solve time of the newest schedule per market.",
            "# TYPE bessfleet_solve_seconds gauge",
        ]
        for solve in store.latest_solves:
            if solve["seconds"] is not None:
                lines.append(
                    f"bessfleet_solve_seconds{_labels(market=solve['market'])} "
                    f"{solve['seconds']:.3f}"
                )
        lines += [
            "# HELP bessfleet_solve_status Status of the newest schedule per market (1 = current).",
            "# TYPE bessfleet_solve_status gauge",
        ]
        for solve in store.latest_solves:
            statuses = sorted({*SOLVE_STATUSES, str(solve["status"])})
            for status in statuses:
                value = 1 if status == solve["status"] else 0
                labels = _labels(market=solve["market"], status=status)
                lines.append(f"bessfleet_solve_status{labels} {value}")
        lines += [
            "# HELP bessfleet_api_requests_total API requests answered.",
            "# TYPE bessfleet_api_requests_total counter",
        ]
        for (method, route, code), n in sorted(self.requests.items()):
            labels = _labels(method=method, route=route, status=str(code))
            lines.append(f"bessfleet_api_requests_total{labels} {n}")
        lines += [
            "# HELP bessfleet_api_request_seconds_total Time spent answering requests.",
            "# TYPE bessfleet_api_request_seconds_total counter",
        ]
        for (method, route), seconds in sorted(self.request_seconds.items()):
            labels = _labels(method=method, route=route)
            lines.append(f"bessfleet_api_request_seconds_total{labels} {seconds:.6f}")
        lines += [
            "# HELP bessfleet_stream_subscribers Connected /v1/stream clients.",
            "# TYPE bessfleet_stream_subscribers gauge",
            f"bessfleet_stream_subscribers {subscribers}",
        ]
        return "\n".join(lines) + "\n"


class MetricsAndLimitsMiddleware:
    """Pure ASGI middleware: count requests, check bodies and queries, add headers.

    A body over ``max_body_bytes`` (declared or chunked) gets 413; a body that is not
    UTF-8, a JSON number that is not finite, or a NUL character gets 422 naming the
    field (:mod:`fleet.api.guard`). Every answer carries the security headers.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app, counting the answer and guarding its input."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = {"status": 500}
        extra_headers = guard.header_list(scope.get("path", ""))

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = int(message["status"])
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        *(h for h in extra_headers if h[0] not in present),
                    ],
                }
            await send(message)

        refusal = await self._refusal(scope, receive)
        if isinstance(refusal, tuple):
            status, content = refusal
            await _reject(guarded_send, status, content)
        else:
            await self.app(scope, refusal, guarded_send)
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(
            scope["method"],
            str(path),
            status_holder["status"],
            time.perf_counter() - started,
        )

    async def _refusal(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any]] | Receive:
        """Return ``(status, body)`` to refuse the request, or the receive to use."""
        query = guard.check_query(scope.get("query_string", b""))
        if query is not None:
            return 422, _validation(*query)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is None and not chunked:
            return receive
        if length is not None and (
            not length.isdigit() or int(length) > self.max_body_bytes
        ):
            return 413, {"detail": f"request body over {self.max_body_bytes} bytes"}
        try:
            body, pending = await guard.read_body(receive, self.max_body_bytes)
        except guard.BodyTooLargeError as exc:
            return 413, {"detail": str(exc)}
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        # FastAPI parses a body without a content type as JSON too
        if body and (
            content_type in {b"", b"application/json"}
            or content_type.endswith(b"+json")
        ):
            problem = guard.check_json_body(body)
            if problem is not None:
                return 422, _validation(*problem)
        return _replay(body, pending, receive)


def _validation(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"detail": [{"loc": loc, "msg": msg, "type": kind}]}


def _replay(body: bytes, pending: list[Message], receive: Receive) -> Receive:
    queue: list[Message] = [
        {"type": "http.request", "body": body, "more_body": False},
        *pending,
    ]

    async def replay() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replay


async def _reject(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

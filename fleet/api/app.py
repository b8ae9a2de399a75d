"""Build the FastAPI app: lifespan (store, broker probe, poller), routers, dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from fleet.api.deps import SECURITY_SCHEMES, KeyCache, uses_auth
from fleet.api.errors import install_error_handlers
from fleet.api.events import EventBus
from fleet.api.guard import RedactKeysFilter
from fleet.api.metrics import ApiMetrics, MetricsAndLimitsMiddleware
from fleet.api.options import ApiOptions
from fleet.api.poller import Cursor, run_poller
from fleet.api.routers import (
    admin,
    alerts,
    forecasts,
    health,
    markets,
    operations,
    schedules,
    session,
    sites,
    stream,
)
from fleet.api.schemas import ErrorOut
from fleet.config import Settings, get_settings
from fleet.store.engine import make_engine

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted [bytes]; larger ones get 413."""

DESCRIPTION = """\
Operator and scheduler API of **bessfleet**: the fleet and its sites, telemetry history,
forecasts, schedules, revenue, bids and awards, warranty, FEOC compliance and a live
event stream.

Every endpoint but `/healthz` and `/readyz` needs an API key, sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>` (never in a URL), or the
dashboard's session cookie from `POST /v1/session` (writes with the cookie also need
the `X-Requested-With` header). Roles: `viewer` reads,
`scheduler` also pushes bids and awards and acknowledges alerts, `admin` also changes the fleet and manages keys.
A missing or wrong key is 401, a key whose role may not do it is 403. Units are in the
field names (`_mw`, `_mwh`, `_usd`); fractions are 0-1; times are UTC (ISO 8601).
"""


class BrokerProbe:
    """An MQTT client kept connected for ``/readyz`` (paho, its own network thread)."""

    def __init__(self, url: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parsed = urlparse(url)
        self.url = url
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (8883 if parsed.scheme == "mqtts" else 1883)
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="",
            protocol=mqtt.MQTTv311,
        )
        if parsed.scheme == "mqtts":
            self._client.tls_set()
        if parsed.username:
            self._client.username_pw_set(parsed.username, parsed.password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(1, 10)

    def _on_connect(self, *_args: Any) -> None:
        reason = _args[3] if len(_args) > 3 else None
        if reason is None or not getattr(reason, "is_failure", False):
            self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def start(self) -> None:
        """Connect in the background (never blocks the event loop)."""
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection."""
        return self._connected.is_set()


def _broker_url(settings: Settings) -> str | None:
    url = (settings.mqtt_url or "").strip()
    if not url or url.lower() in {"none", "off"}:
        return None
    return url


_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_VALIDATION_REF = {"$ref": "#/components/schemas/HTTPValidationError"}
GENERIC_ERRORS: dict[str, dict[str, Any]] = {
    "413": {
        "description": f"The request body is over {MAX_BODY_BYTES} bytes.",
        "content": {"application/json": {"schema": _ERROR_REF}},
    },
    "422": {
        "description": (
            "Invalid input; `detail[].loc` names the field. Also: a body that is not "
            "UTF-8, a JSON number that is NaN, Infinity or out of range, a NUL "
            "character anywhere, a time outside 1970..2100."
        ),
        "content": {"application/json": {"schema": _VALIDATION_REF}},
    },
    "503": {
        "description": "The store is unavailable (or another dependency is down).",
        "content": {"application/json": {"schema": _ERROR_REF}},
    },
}
"""Answers any operation may give besides its own (added to the OpenAPI document)."""


_FIRST_ITEM = "$response.body#/items/0"
LINKS: tuple[tuple[str, str, str, str, str, str, dict[str, str]], ...] = (
    # (from path, method, status, link name, to path, method, parameters)
    ("/v1/keys", "post", "201", "RevokeKey", "/v1/keys/{key_id}", "delete",
     {"key_id": "$response.body#/key_id"}),
    ("/v1/sites", "get", "200", "GetSite", "/v1/sites/{site_id}", "get",
     {"site_id": f"{_FIRST_ITEM}/site_id"}),
    ("/v1/sites", "get", "200", "GetSiteState", "/v1/sites/{site_id}/state", "get",
     {"site_id": f"{_FIRST_ITEM}/site_id"}),
    ("/v1/sites", "get", "200", "GetScheduleVsRealized",
     "/v1/sites/{site_id}/schedule-vs-realized", "get",
     {"site_id": f"{_FIRST_ITEM}/site_id"}),
    ("/v1/sites", "get", "200", "GetWarranty", "/v1/sites/{site_id}/warranty", "get",
     {"site_id": f"{_FIRST_ITEM}/site_id"}),
    ("/v1/schedules", "get", "200", "GetSchedule", "/v1/schedules/{schedule_id}",
     "get", {"schedule_id": f"{_FIRST_ITEM}/schedule_id"}),
    ("/v1/markets/{market}/bids/{operating_day}", "put", "201", "GetBids",
     "/v1/markets/{market}/bids/{operating_day}", "get",
     {"market": "$request.path.market", "operating_day": "$request.path.operating_day"}),
    ("/v1/markets/{market}/awards/{operating_day}", "put", "201", "GetAwards",
     "/v1/markets/{market}/awards/{operating_day}", "get",
     {"market": "$request.path.market", "operating_day": "$request.path.operating_day"}),
    ("/v1/awards", "get", "200", "GetAwardSet",
     "/v1/markets/{market}/awards/{operating_day}", "get",
     {"market": f"{_FIRST_ITEM}/market",
      "operating_day": f"{_FIRST_ITEM}/operating_day"}),
    ("/v1/alerts", "get", "200", "GetAlert", "/v1/alerts/{alert_id}", "get",
     {"alert_id": f"{_FIRST_ITEM}/alert_id"}),
    ("/v1/alerts", "get", "200", "AcknowledgeAlert", "/v1/alerts/{alert_id}/ack",
     "post", {"alert_id": f"{_FIRST_ITEM}/alert_id"}),
)  # fmt: skip
"""OpenAPI links between operations (what a client, or a stateful fuzzer, follows)."""


def _add_links(schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    for src, method, status, name, dst, dst_method, parameters in LINKS:
        target = paths.get(dst, {}).get(dst_method)
        answer = paths.get(src, {}).get(method, {}).get("responses", {}).get(status)
        if target is None or answer is None:
            continue
        answer.setdefault("links", {})[name] = {
            "operationId": target["operationId"],
            "parameters": parameters,
        }


def _api_routes(app: FastAPI) -> list[Any]:
    """Return the app's API routes as the OpenAPI generator sees them."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # FastAPI before included-router contexts
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [
        ctx
        for ctx in iter_contexts(app.routes)
        if isinstance(ctx.original_route, APIRoute)
    ]


def _add_security(app: FastAPI, schema: dict[str, Any]) -> None:
    """List the key schemes on every operation that authenticates.

    The routes authenticate through one dependency that reads the three schemes
    itself (cheaper per request than one sub-dependency each), so FastAPI does not
    see them: add them here as it would.
    """
    requirement: list[dict[str, list[str]]] = [
        {scheme.scheme_name: []} for scheme in SECURITY_SCHEMES
    ]
    found = False
    for route in _api_routes(app):
        if not route.include_in_schema or not uses_auth(route.dependant):
            continue
        methods = schema.get("paths", {}).get(route.path_format, {})
        for method in route.methods:
            operation = methods.get(method.lower())
            if operation is None:
                continue
            found = True
            # FastAPI puts "security" before the parameters: keep that order
            items = list(operation.items())
            at = next(
                (
                    i
                    for i, (k, _) in enumerate(items)
                    if k in {"parameters", "requestBody", "responses"}
                ),
                len(items),
            )
            items.insert(at, ("security", list(requirement)))
            operation.clear()
            operation.update(items)
    if found:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for scheme in SECURITY_SCHEMES:
            schemes[scheme.scheme_name] = jsonable_encoder(
                scheme.model, by_alias=True, exclude_none=True
            )


def _document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document list every status the API can answer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _add_security(app, schema)
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                responses = operation.setdefault("responses", {})
                for status, answer in GENERIC_ERRORS.items():
                    if status == "413" and "requestBody" not in operation:
                        continue
                    current = responses.setdefault(status, dict(answer))
                    if current.get("description") == "Validation Error":
                        current["description"] = answer["description"]
        _add_links(schema)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorOut", ErrorOut.model_json_schema())
        if "HTTPValidationError" not in components:
            components["HTTPValidationError"] = {
                "type": "object",
                "properties": {
                    "detail": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ValidationError"},
                    }
                },
            }
            components["ValidationError"] = {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_GC_FROZEN = False


def _freeze_startup_objects() -> None:
    """Move what exists after the first startup out of the cyclic collector's reach.

    The modules, models and routes (about 160,000 objects) live as long as the
    process, yet a full collection scans them all: a 70-90 ms stall of every request
    in flight, which set the latency tail. :func:`gc.freeze` exempts them; later
    garbage is still collected. Once per process (tests start many apps in one).
    """
    global _GC_FROZEN
    if not _GC_FROZEN:
        _GC_FROZEN = True
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings | None = None, options: ApiOptions | None = None
) -> FastAPI:
    """Return the API app for ``settings`` (read from the environment when None).

    Parameters
    ----------
    settings
        Platform settings: the store URL and the broker URL (``/readyz`` checks both).
    options
        Limits and intervals of the API (history range, page size, poll interval).
    """
    settings = settings or get_settings()
    options = options or ApiOptions()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        redact = RedactKeysFilter()
        access_log = logging.getLogger("uvicorn.access")
        access_log.addFilter(redact)
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        app.state.engine = engine
        app.state.bus = bus
        app.state.cursor = Cursor()
        probe: BrokerProbe | None = None
        broker_url = _broker_url(settings)
        if options.broker_check and broker_url is not None:
            probe = BrokerProbe(broker_url)
            probe.start()
        app.state.broker = probe
        _freeze_startup_objects()
        poller = asyncio.create_task(
            run_poller(engine, bus, options.poll_interval_s, app.state.cursor),
            name="bessfleet-store-poller",
        )
        logger.info("API started on store %s", engine.url.render_as_string())
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if probe is not None:
                await asyncio.to_thread(probe.stop)
            access_log.removeFilter(redact)
            engine.dispose()

    app = FastAPI(
        title="bessfleet API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "health", "description": "Liveness, readiness, metrics."},
            {"name": "fleet", "description": "Sites, state, availability, telemetry."},
            {"name": "schedules", "description": "Schedules and revenue."},
            {"name": "forecasts", "description": "Price forecasts with quantiles."},
            {"name": "markets", "description": "Bids and awards."},
            {
                "name": "alerts",
                "description": "Asset-health alerts: list, acknowledge.",
            },
            {"name": "admin", "description": "Keys, fleet changes, audit log."},
            {"name": "stream", "description": "Server-Sent Events."},
            {"name": "session", "description": "Dashboard sign-in (session cookie)."},
        ],
    )
    app.state.settings = settings
    app.state.options = options
    app.state.metrics = ApiMetrics()
    app.state.key_cache = KeyCache(options.auth_cache_s)
    # No dependency override here: FastAPI rebuilds every sub-dependency of every
    # request while any override is set (measured: 16 signature inspections/request).
    install_error_handlers(app)
    app.add_middleware(
        MetricsAndLimitsMiddleware,
        metrics=app.state.metrics,
        max_body_bytes=MAX_BODY_BYTES,
    )
    for module in (
        health,
        sites,
        schedules,
        forecasts,
        markets,
        alerts,
        operations,
        admin,
        session,
        stream,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    _document_errors(app)

    @app.get("/", include_in_schema=False, response_model=None)
    def dashboard(request: Request) -> FileResponse | RedirectResponse:
        """Serve the operator dashboard (it signs in with a key itself)."""
        if "key" in request.query_params:
            # keys never travel in URLs: drop it (the access log redacts it)
            return RedirectResponse("/?signin=url-key", status_code=303)
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    return app

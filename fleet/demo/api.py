"""Run the API and dashboard in a thread, and probe it while the demo plays."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import httpx
import uvicorn

from fleet.api.app import create_app
from fleet.config import Settings

logger = logging.getLogger(__name__)


class ApiServer:
    """The FastAPI app served by uvicorn in a background thread on ``host:port``."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, name="demo-api", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start serving; wait until ``/healthz`` answers.

        Raises
        ------
        RuntimeError
            When the API does not answer within ``timeout_s``.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        msg = f"the API did not answer on {self.url}/healthz within {timeout_s:g} s"
        raise RuntimeError(msg)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread (idempotent)."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread.is_alive()


@dataclass(slots=True)
class ProbeStats:
    """What the API answered while the demo played."""

    ok: int = 0
    """Requests answered 2xx."""
    failed: int = 0
    """Requests that failed or answered otherwise."""
    paths: dict[str, int] = field(default_factory=dict)
    """2xx answers per path."""
    last_error: str | None = None
    """The last failure, for the log."""


class ApiProbe:
    """Ask the API, as a viewer, what an operator's dashboard asks, every ``period_s``."""

    def __init__(
        self, base_url: str, key: str, paths: list[str], period_s: float = 1.0
    ) -> None:
        self.base_url = base_url
        self.paths = paths
        self.period_s = period_s
        self.stats = ProbeStats()
        self._headers = {"Authorization": f"Bearer {key}"}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="demo-api-probe", daemon=True
        )

    def start(self) -> None:
        """Start probing in a thread."""
        self._thread.start()

    def probe_once(self, client: httpx.Client) -> None:
        """Request every path once."""
        for path in self.paths:
            try:
                response = client.get(path, headers=self._headers, timeout=10.0)
            except httpx.HTTPError as exc:
                self.stats.failed += 1
                self.stats.last_error = f"{path}: {exc}"
                continue
            if 200 <= response.status_code < 300:
                self.stats.ok += 1
                key = path.split("?", 1)[0]
                self.stats.paths[key] = self.stats.paths.get(key, 0) + 1
            else:
                self.stats.failed += 1
                self.stats.last_error = f"{path}: HTTP {response.status_code}"

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url) as client:
            while not self._stop.is_set():
                self.probe_once(client)
                self._stop.wait(self.period_s)

    def stop(self) -> None:
        """Stop probing."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15.0)

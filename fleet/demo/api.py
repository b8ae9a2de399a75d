"""Run the API and dashboard in a thread while the demo plays."""

from __future__ import annotations

import logging
import threading
import time

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

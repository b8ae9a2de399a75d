"""Run the API and dashboard in a thread while the demo plays."""

from __future__ import annotations

import threading
import time

import uvicorn

from fleet.api.app import create_app
from fleet.config import Settings


class ApiServer:
    """The FastAPI app served by uvicorn in a background thread on ``host:port``."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, name="demo-api", daemon=True
        )

    def start(self, timeout_s: float = 20.0) -> None:
        """Start serving; wait until uvicorn has started.

        Raises
        ------
        RuntimeError
            When the API has not started within ``timeout_s``.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                msg = f"the API did not start on {self.url} within {timeout_s:g} s"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread (idempotent)."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)

"""Run the API app under uvicorn on a free loopback port, in a thread, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from fleet.api.app import create_app
from fleet.api.options import ApiOptions
from fleet.config import Settings
from tests.conftest import free_port


class LiveServer:
    """A uvicorn server running the app in a background thread."""

    def __init__(
        self, settings: Settings, options: ApiOptions, log_level: str = "warning"
    ) -> None:
        self.port = free_port()
        self.app = create_app(settings, options)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until the server accepts requests."""
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                msg = "uvicorn did not start within 20 s"
                raise RuntimeError(msg)
            time.sleep(0.02)

    def stop(self) -> None:
        """Ask the server to exit and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def live_server(
    url: str, *, mqtt_url: str = "none", log_level: str = "warning", **options: object
) -> Iterator[LiveServer]:
    """Run the app for the store at ``url`` for the duration of the block."""
    settings = Settings(database_url=url, mqtt_url=mqtt_url)
    opts = ApiOptions(**{"poll_interval_s": 0.2, **options})  # type: ignore[arg-type]
    server = LiveServer(settings, opts, log_level)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def http_client(server: LiveServer) -> httpx.Client:
    """Return an httpx client on the server's base URL."""
    return httpx.Client(base_url=server.url, timeout=30.0)

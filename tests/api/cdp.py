"""Drive headless Chromium over the DevTools protocol (a minimal synchronous client)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.conftest import free_port

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_path() -> str | None:
    """Return the Chromium binary, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """A headless Chromium with one page, driven over CDP."""

    def __init__(self, binary: str, width: int = 1440, height: int = 900) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="bessfleet-chromium-")
        self.process = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ws = self._connect_page()
        self._next_id = 0
        self.console: list[str] = []
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _connect_page(self) -> ClientConnection:
        deadline = time.monotonic() + 30
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"chromium exited with {self.process.returncode}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/json/list", timeout=2
                ) as response:
                    targets = json.load(response)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return connect(
                        pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024
                    )
            except OSError as exc:
                last_error = exc
            time.sleep(0.2)
        msg = f"chromium DevTools did not come up: {last_error}"
        raise RuntimeError(msg)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a CDP command and return its result (events are collected on the way)."""
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    msg = f"{method}: {message['error']}"
                    raise RuntimeError(msg)
                return dict(message.get("result", {}))
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", "")) for a in args))
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append(
                    f"exception: {details.get('text')} {details.get('exception', {}).get('description', '')}"
                )

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JavaScript expression in the page and return its value."""
        result = self.send(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            msg = f"{expression}: {result['exceptionDetails']}"
            raise RuntimeError(msg)
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        """Navigate the page to ``url``."""
        self.send("Page.navigate", url=url)

    def sign_in(self, base_url: str, key: str) -> None:
        """Open the dashboard at ``base_url`` and sign in with ``key`` through its form."""
        self.goto("about:blank")
        self.wait_for("location.href === 'about:blank'")
        self.goto(f"{base_url}/")
        self.wait_for(
            "location.href.startsWith('http') && document.readyState === 'complete' "
            "&& document.querySelector('#keyform') !== null"
        )
        self.evaluate(
            f"document.querySelector('#apikey').value = {json.dumps(key)}; "
            "document.querySelector('#keyform').requestSubmit(); true"
        )

    def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.1)
        msg = f"timed out after {timeout_s} s waiting for {expression}; console: {self.console[-5:]}"
        raise AssertionError(msg)

    def screenshot(self, path: Path) -> None:
        """Save a PNG screenshot of the full page."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        data = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            },
        )["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Close the connection and stop Chromium."""
        try:
            self._ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

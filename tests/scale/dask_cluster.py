"""Start a real Dask scheduler and workers as subprocesses on loopback (test helper)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO_ROOT, free_port

DASK = Path(sys.executable).with_name("dask")


@contextmanager
def dask_cluster(n_workers: int, log_dir: Path) -> Iterator[str]:
    """Run ``dask scheduler`` and ``n_workers`` ``dask worker`` processes; yield the address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []

    def spawn(name: str, args: list[str]) -> None:
        log = (log_dir / f"{name}.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [str(DASK), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO_ROOT,
            )
        )

    try:
        spawn(
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        )
        for k in range(n_workers):
            spawn(
                f"worker{k}",
                [
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--name",
                    f"w{k}",
                ],
            )
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def wait_for_workers(address: str, n_workers: int, timeout_s: float = 60.0) -> None:
    """Block until the scheduler at ``address`` has ``n_workers`` workers."""
    from distributed import Client

    with Client(address, timeout=timeout_s) as client:
        client.wait_for_workers(n_workers, timeout=timeout_s)

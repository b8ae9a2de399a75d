"""Choose where independent work runs: a process pool, a Dask LocalCluster or a cluster.

The fleet solve (one subproblem per POI component) and the backtest (one task per day)
are embarrassingly parallel. They take a :class:`concurrent.futures.Executor`; this
module makes one from the operator's choice:

- ``--dask tcp://scheduler:8786`` (or ``BESSFLEET_DASK_ADDRESS``): a
  :class:`distributed.Client` connected to that scheduler, through
  ``client.get_executor()``;
- no address and ``local="process"`` (default): a :class:`ProcessPoolExecutor` with
  ``workers`` processes on this machine;
- no address and ``local="dask"``: a :class:`distributed.LocalCluster` with ``workers``
  single-threaded worker processes on loopback (the dashboard is off).

Use it as a context manager so that the pool, cluster or client is always closed::

    with make_executor(settings.dask_address, workers=4) as executor:
        result = solve(scn, SolveOptions(executor=executor))
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fleet.errors import FleetInputError

if TYPE_CHECKING:
    from fleet.config import Settings

logger = logging.getLogger(__name__)

LocalKind = Literal["process", "dask"]

_ADDRESS = re.compile(
    r"^(?:(?P<scheme>tcp|tls|inproc|ucx|ws|wss)://)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?/?$"
)
CONNECT_TIMEOUT_S = 30.0
"""How long to wait for a Dask scheduler to answer [s]."""


@dataclass(frozen=True, slots=True)
class ExecutorPlan:
    """Where the parallel work will run (resolved, validated).

    Attributes
    ----------
    kind : {"process", "dask-local", "dask"}
        Process pool, Dask LocalCluster on this machine, or a remote Dask scheduler.
    workers : int
        Worker processes for the local kinds (the remote cluster has its own count).
    address : str or None
        Normalised scheduler address (``tcp://host:port``) for ``kind="dask"``.
    """

    kind: Literal["process", "dask-local", "dask"]
    workers: int
    address: str | None = None


def default_workers() -> int:
    """Return the worker count used when none is given: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def normalize_dask_address(address: str, *, field: str = "dask_address") -> str:
    """Validate a scheduler address and return it with a scheme and port.

    Parameters
    ----------
    address
        ``tcp://host:port``, ``tls://host:port`` or ``host[:port]`` (port 8786 when
        omitted, Dask's default).
    field
        Name of the option or setting the address came from, used in errors.

    Returns
    -------
    str
        The address as ``scheme://host:port``.

    Raises
    ------
    FleetInputError
        When the address is empty or not of that form, or the port is out of range.
    """
    text = address.strip()
    match = _ADDRESS.match(text)
    if not text or match is None:
        msg = (
            f"{field}={address!r} is not a Dask scheduler address; "
            "expected tcp://HOST:PORT (or tls://HOST:PORT, HOST:PORT)"
        )
        raise FleetInputError(msg)
    scheme = match.group("scheme") or "tcp"
    port = int(match.group("port") or 8786)
    if not 1 <= port <= 65535:
        msg = f"{field}={address!r}: port {port} must be in 1..65535"
        raise FleetInputError(msg)
    return f"{scheme}://{match.group('host')}:{port}"


def resolve_dask_address(
    option: str | None, settings: Settings | None = None
) -> str | None:
    """Return the scheduler address to use: the CLI option, else the setting, else None.

    Parameters
    ----------
    option
        Value of ``--dask`` (None or empty when not given).
    settings
        Platform settings; ``settings.dask_address`` is ``BESSFLEET_DASK_ADDRESS``.
    """
    if option:
        return normalize_dask_address(option, field="--dask")
    if settings is not None and settings.dask_address:
        return normalize_dask_address(
            settings.dask_address, field="BESSFLEET_DASK_ADDRESS"
        )
    return None


def plan_executor(
    dask_address: str | None,
    workers: int | None = None,
    *,
    local: LocalKind = "process",
) -> ExecutorPlan:
    """Validate the choice and say where work will run, without starting anything.

    Parameters
    ----------
    dask_address
        Scheduler address, or None to run on this machine.
    workers
        Local worker processes (None: every CPU this process may use); ignored for a
        remote scheduler.
    local : {"process", "dask"}
        What to start on this machine when no address is given.

    Raises
    ------
    FleetInputError
        When ``workers`` < 1, ``local`` is unknown or the address is malformed.
    """
    if workers is not None and workers < 1:
        msg = f"workers={workers} must be >= 1"
        raise FleetInputError(msg)
    if local not in ("process", "dask"):
        msg = f"local={local!r} must be 'process' or 'dask'"
        raise FleetInputError(msg)
    count = workers if workers is not None else default_workers()
    if dask_address:
        return ExecutorPlan("dask", count, normalize_dask_address(dask_address))
    return ExecutorPlan("dask-local" if local == "dask" else "process", count)


class PortableExecutor(Executor):
    """An executor that pickles as an inert handle.

    Option objects that carry the executor (``SolveOptions(executor=…)``) may be sent
    to the workers along with a task; a live pool, client or cluster cannot be pickled,
    so a copy made in another process is a handle that refuses to run tasks.
    """

    def __init__(self, inner: Executor | None, kind: str) -> None:
        self._inner = inner
        self.kind = kind

    @property
    def inner(self) -> Executor | None:
        """The wrapped executor (None in a copy made by pickling)."""
        return self._inner

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Schedule ``fn(*args, **kwargs)`` on the wrapped executor; return its future."""
        if self._inner is None:
            msg = (
                f"this {self.kind} executor handle was copied to a worker: submit there"
            )
            raise RuntimeError(msg)
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the wrapped executor down (its owner, :func:`make_executor`, also does)."""
        if self._inner is not None:
            self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __reduce__(self) -> tuple[Any, ...]:
        return (PortableExecutor, (None, self.kind))


@contextmanager
def make_executor(
    dask_address: str | None = None,
    workers: int | None = None,
    *,
    local: LocalKind = "process",
) -> Iterator[Executor]:
    """Yield an executor for independent tasks; close it (and its cluster) on exit.

    Parameters
    ----------
    dask_address
        Address of a Dask scheduler (``--dask`` / ``BESSFLEET_DASK_ADDRESS``); None runs
        on this machine.
    workers
        Local worker processes (None: every CPU this process may use).
    local : {"process", "dask"}
        Without an address: a process pool (default) or a Dask LocalCluster.

    Yields
    ------
    PortableExecutor
        A :class:`concurrent.futures.Executor`: ``submit``/``map`` run the callables
        on the chosen workers. Callables and arguments must be picklable
        (module-level functions, plain data); the executor itself pickles as an
        inert handle, so it may ride along inside an options object.

    Raises
    ------
    FleetInputError
        When the arguments are invalid (see :func:`plan_executor`).
    RuntimeError
        When the Dask scheduler cannot be reached within :data:`CONNECT_TIMEOUT_S`.
    """
    plan = plan_executor(dask_address, workers, local=local)
    if plan.kind == "process":
        logger.info("parallel work on a process pool of %d workers", plan.workers)
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=plan.workers, mp_context=context) as pool:
            yield PortableExecutor(pool, plan.kind)
        return
    with _dask_client(plan) as client:
        executor = client.get_executor()
        try:
            yield PortableExecutor(executor, plan.kind)
        finally:
            executor.shutdown(wait=True)


@contextmanager
def _dask_client(plan: ExecutorPlan) -> Iterator[Any]:
    """Yield a connected ``distributed.Client`` for the plan; close it afterwards."""
    import distributed

    dist: Any = distributed  # partly untyped; keep the calls out of mypy's strict mode
    if plan.kind == "dask":
        logger.info("parallel work on the Dask scheduler at %s", plan.address)
        try:
            client = dist.Client(plan.address, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            msg = f"cannot reach the Dask scheduler at {plan.address}: {exc}"
            raise RuntimeError(msg) from exc
        try:
            yield client
        finally:
            client.close()
        return
    logger.info("parallel work on a Dask LocalCluster of %d workers", plan.workers)
    cluster = dist.LocalCluster(
        n_workers=plan.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        client = dist.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def scheduler_info(executor: Executor) -> dict[str, Any] | None:
    """Return the Dask scheduler's description behind ``executor`` (None if not Dask)."""
    inner = executor.inner if isinstance(executor, PortableExecutor) else executor
    client = getattr(inner, "_client", None)
    if client is None:
        return None
    info: dict[str, Any] = client.scheduler_info()
    return info

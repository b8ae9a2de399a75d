"""fleet.parallel: the same executor contract on a process pool, a LocalCluster and a real cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleet.config import Settings
from fleet.errors import FleetInputError
from fleet.parallel import (
    make_executor,
    normalize_dask_address,
    plan_executor,
    resolve_dask_address,
    scheduler_info,
)
from tests.scale.dask_cluster import dask_cluster, wait_for_workers


def _worker_identity(k: int) -> tuple[int, int, str]:
    """Return (k², pid, dask worker name or '-') from wherever it runs."""
    import time

    time.sleep(0.2)  # long enough that the scheduler spreads tasks over both workers
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except ValueError:
        name = "-"
    return k * k, os.getpid(), name


def test_normalize_dask_address_adds_scheme_and_port_when_missing() -> None:
    assert normalize_dask_address("sched.internal") == "tcp://sched.internal:8786"
    assert normalize_dask_address("tls://10.0.0.5:9000") == "tls://10.0.0.5:9000"


@pytest.mark.parametrize("bad", ["", "http://x:1", "tcp://host:99999", "a b"])
def test_normalize_dask_address_raises_naming_field_when_malformed(bad: str) -> None:
    with pytest.raises(FleetInputError, match="--dask="):
        normalize_dask_address(bad, field="--dask")


def test_resolve_dask_address_prefers_option_then_setting_when_both_given() -> None:
    settings = Settings(dask_address="tcp://from-env:8786")
    assert resolve_dask_address("tcp://cli:1234", settings) == "tcp://cli:1234"
    assert resolve_dask_address(None, settings) == "tcp://from-env:8786"
    assert resolve_dask_address(None, Settings(dask_address=None)) is None


def test_resolve_dask_address_names_env_variable_when_setting_is_bad() -> None:
    with pytest.raises(FleetInputError, match="BESSFLEET_DASK_ADDRESS"):
        resolve_dask_address(None, Settings(dask_address="ftp://nope"))


def test_plan_executor_rejects_zero_workers_when_given() -> None:
    with pytest.raises(FleetInputError, match="workers=0"):
        plan_executor(None, 0)


def test_plan_executor_chooses_kind_when_address_or_local_given() -> None:
    assert plan_executor(None, 2).kind == "process"
    assert plan_executor(None, 2, local="dask").kind == "dask-local"
    plan = plan_executor("127.0.0.1:8786", 2)
    assert (plan.kind, plan.address) == ("dask", "tcp://127.0.0.1:8786")


def test_make_executor_runs_tasks_in_other_processes_when_process_pool() -> None:
    with make_executor(None, workers=2) as executor:
        results = list(executor.map(_worker_identity, range(4)))
        assert scheduler_info(executor) is None
    assert [r[0] for r in results] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for _, pid, _ in results)


def _transitions(address: str) -> int:
    """Task state transitions the scheduler at ``address`` has made so far."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        return int(client.run_on_scheduler(_scheduler_transitions))


def _scheduler_transitions(dask_scheduler: Any) -> int:
    return int(dask_scheduler.transition_counter)


@pytest.mark.slow
@pytest.mark.integration
def test_make_executor_spreads_tasks_over_two_workers_when_dask_scheduler_given(
    tmp_path: Path, spec_examples: Path
) -> None:
    from dispatch.scenario import load_scenario
    from dispatch.solve import SolveOptions, solve

    scn = load_scenario(spec_examples / "three-sites-stacked.scenario.json")
    serial = solve(scn, SolveOptions())
    with dask_cluster(2, tmp_path / "dask") as address:
        wait_for_workers(address, 2)
        with make_executor(address) as executor:
            info = scheduler_info(executor)
            assert info is not None
            assert len(info["workers"]) == 2
            futures = [executor.submit(_worker_identity, k) for k in range(8)]
            results = [f.result(timeout=60) for f in futures]
            before = _transitions(address)
            on_dask = solve(scn, SolveOptions(executor=executor, workers=2))
            after = _transitions(address)
    assert [r[0] for r in results] == [k * k for k in range(8)]
    assert {name for _, _, name in results} == {"w0", "w1"}
    assert os.getpid() not in {pid for _, pid, _ in results}
    assert after > before  # the component solves went through the scheduler
    assert on_dask.status == serial.status
    assert on_dask.objective_usd == pytest.approx(serial.objective_usd, rel=1e-6)


def test_portable_executor_pickles_as_inert_handle_when_copied() -> None:
    import pickle

    from fleet.parallel import PortableExecutor

    with make_executor(None, workers=1) as executor:
        copy = pickle.loads(pickle.dumps(executor))
        assert isinstance(copy, PortableExecutor)
        assert copy.inner is None
        with pytest.raises(RuntimeError, match="copied to a worker"):
            copy.submit(abs, -1)
        assert executor.submit(abs, -1).result() == 1


@pytest.mark.slow
def test_make_executor_starts_and_closes_local_cluster_when_local_dask() -> None:
    with make_executor(None, workers=2, local="dask") as executor:
        info = scheduler_info(executor)
        assert info is not None
        assert len(info["workers"]) == 2
        assert str(info["address"]).startswith("tcp://127.0.0.1:")
        results = list(executor.map(_worker_identity, range(3)))
    assert [r[0] for r in results] == [0, 1, 4]


def test_dispatch_solve_cli_matches_serial_when_sent_to_dask_scheduler(
    tmp_path: Path, spec_examples: Path
) -> None:
    import json
    import subprocess
    import sys

    from dispatch.scenario import load_scenario
    from dispatch.solve import SolveOptions, solve

    scenario = spec_examples / "three-sites-stacked.scenario.json"
    serial = solve(load_scenario(scenario), SolveOptions())
    out = tmp_path / "result.json"
    with dask_cluster(2, tmp_path / "dask") as address:
        wait_for_workers(address, 2)
        before = _transitions(address)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet",
                "dispatch",
                "solve",
                str(scenario),
                "-o",
                str(out),
                "--dask",
                address,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        after = _transitions(address)
    assert proc.returncode == 0, proc.stderr
    assert after > before  # the subproblems went through the scheduler
    result = json.loads(out.read_text())
    assert result["status"] == serial.status
    assert result["objective_usd"] == pytest.approx(serial.objective_usd, rel=1e-6)


def test_dispatch_solve_cli_exits_2_naming_option_when_dask_address_malformed(
    tmp_path: Path, spec_examples: Path
) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet",
            "dispatch",
            "solve",
            str(spec_examples / "one-site-arbitrage.scenario.json"),
            "-o",
            str(tmp_path / "r.json"),
            "--dask",
            "tcp://bad host:x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "--dask" in proc.stderr
    assert "Traceback" not in proc.stderr

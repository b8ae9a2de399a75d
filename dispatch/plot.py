"""Draw a dispatch result: SoC, power and awards per site, revenue by service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dispatch.result import Result
    from dispatch.scenario import Scenario


def plot_result(
    result: Result, path: str | Path, scn: Scenario | None = None, max_sites: int = 8
) -> None:
    """Write a PNG with one panel per site and a revenue bar chart.

    Parameters
    ----------
    result : Result
        A result with a schedule.
    path : str or Path
        PNG file to write.
    scn : Scenario, optional
        Its scenario: gives hours on the time axis and the energy price overlay.
    max_sites : int
        Draw at most this many sites (the first ones).
    """
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ids = list(result.sites)[:max_sites]
    fig, axes = plt.subplots(
        len(ids) + 1, 1, figsize=(11, 2.6 * (len(ids) + 1)), squeeze=False
    )
    dt_h = scn.delta_h if scn is not None else 1.0
    for ax, sid in zip(axes[:-1, 0], ids, strict=False):
        sched = result.sites[sid]
        n = len(sched.charge_mw)
        t = np.arange(n) * dt_h
        net = np.asarray(sched.discharge_mw) - np.asarray(sched.charge_mw)
        ax.step(t, net, where="post", color="tab:blue", label="discharge - charge [MW]")
        ax.fill_between(
            t,
            0,
            sched.reg_up_mw,
            step="post",
            alpha=0.3,
            color="tab:green",
            label="reg up [MW]",
        )
        ax.fill_between(
            t,
            0,
            -np.asarray(sched.reg_down_mw),
            step="post",
            alpha=0.3,
            color="tab:orange",
            label="reg down [MW]",
        )
        ax.fill_between(
            t,
            0,
            sched.spin_mw,
            step="post",
            alpha=0.3,
            color="tab:purple",
            label="spin [MW]",
        )
        ax.set_ylabel("MW")
        title = f"{sid}  (capacity {sched.capacity_mw:.2f} MW)"
        ax.set_title(title, fontsize=9, loc="left")
        soc_ax = ax.twinx()
        soc_ax.plot(
            np.arange(n + 1) * dt_h, sched.soc, color="black", lw=1.2, label="SoC"
        )
        soc_ax.set_ylim(0, 1)
        soc_ax.set_ylabel("SoC")
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    ax = axes[-1, 0]
    keys = list(result.revenue_usd)
    values = [result.revenue_usd[k] for k in keys]
    colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
    ax.bar(keys, values, color=colors)
    ax.set_ylabel("USD")
    ax.set_title(
        f"revenue by service — objective {result.objective_usd or 0:,.2f} USD ({result.status})",
        fontsize=9,
        loc="left",
    )
    axes[-2, 0].set_xlabel("hours from start" if scn is not None else "intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

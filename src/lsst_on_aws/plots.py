"""Figures of the Snakemake report."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

BAND_COLOURS = {"g": "tab:green", "r": "tab:red", "i": "tab:orange", "z": "tab:purple", "y": "tab:brown"}


def _visit_job_times(ax, x, table: pd.DataFrame) -> None:
    """Wall time (wide, grey) and CPU time (narrow, blue) of each visit's processing."""
    ax.bar(x, table["wall_s"], color="lightgray", label="wall")
    ax.bar(x, table["cpu_s"], color="tab:blue", width=0.5, label="CPU")
    ax.set_ylabel("processing time (s)")
    ax.legend(frameon=False)


def plot_visits(table: pd.DataFrame, path: str) -> None:
    """Panels per visit: PSF FWHM, sources, sky level, and the job's wall and CPU time; for visits
    calibrated against a reference catalogue, also the 5-sigma depth and the astrometric offset.

    Visits that failed have no measurement bars and are marked "failed".
    """
    calibrated = "depth_mag_5sigma" in table
    rows = 3 if calibrated else 2
    fig, axes = plt.subplots(rows, 2, figsize=(9, 3 * rows), sharex=True, layout="constrained")
    colours = [BAND_COLOURS.get(b, "tab:gray") for b in table["band"]]
    x = table["visit"].astype(str)
    panels = [
        (axes[0, 0], "psf_fwhm_arcsec", "PSF FWHM (arcsec)"),
        (axes[0, 1], "n_sources", "sources detected"),
        (axes[1, 0], "sky_level_e", "sky (e- / pixel)"),
    ]
    if calibrated:
        panels += [
            (axes[2, 0], "depth_mag_5sigma", "5-sigma depth (mag)"),
            (axes[2, 1], "astrom_offset_arcsec", "offset from Gaia (arcsec)"),
        ]
    failed = x[table["status"] != "ok"] if "status" in table else x[:0]
    for ax, column, label in panels:
        ax.bar(x, table[column], color=colours)
        ax.set_ylabel(label)
        for name in failed:  # no bar: say why there is none
            ax.annotate("failed", (name, 0), rotation=90, ha="center", va="bottom", color="tab:red")
    _visit_job_times(axes[1, 1], x, table)
    if calibrated:
        depth = table["depth_mag_5sigma"]
        if depth.notna().any():
            axes[2, 0].set_ylim(depth.min() - 0.5, depth.max() + 0.3)
        axes[2, 1].errorbar(x, table["astrom_offset_arcsec"], yerr=table["astrom_scatter_arcsec"], fmt="none",
                            ecolor="black", capsize=3)  # fmt: skip
    for ax in axes[-1]:
        ax.set_xlabel("visit")
        ax.tick_params(axis="x", labelrotation=45)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c) for b, c in BAND_COLOURS.items() if b in set(table["band"])
    ]
    labels = [b for b in BAND_COLOURS if b in set(table["band"])]
    fig.legend(handles, labels, title="band", loc="outside right upper", frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lanes(starts, ends) -> list[int]:
    """A lane per job so that jobs overlapping in time on one node never share one."""
    lane_end: list = []
    lanes = []
    for start, end in zip(starts, ends, strict=True):
        for i, busy_until in enumerate(lane_end):
            if busy_until <= start:
                lane_end[i] = end
                lanes.append(i)
                break
        else:
            lane_end.append(end)
            lanes.append(len(lane_end) - 1)
    return lanes


def latest_session(jobs: pd.DataFrame, gap_s: float = 600.0) -> pd.DataFrame:
    """The jobs of the last stretch of activity: no gap longer than ``gap_s`` between them.

    A rerun keeps the outputs (and timings) of jobs it did not need to run
    again; those ran earlier, in another session.
    """
    jobs = jobs.sort_values("start")
    previous_end = jobs["end"].cummax().shift()
    session = (jobs["start"] - previous_end > pd.Timedelta(seconds=gap_s)).cumsum()
    return jobs[session == session.iloc[-1]]


def plot_gantt(timings: pd.DataFrame, path: str) -> None:
    """Jobs per node over time: one row per node and concurrent job slot, coloured by rule.

    Only the latest session is drawn; the title counts the earlier jobs whose
    outputs the run reused.
    """
    every_job = timings[timings["kind"] == "job"]
    jobs = latest_session(every_job).copy()
    jobs["node"] = jobs["node"].replace("", "(not recorded)")
    t0 = jobs["start"].min()
    jobs["t0"] = (jobs["start"] - t0).dt.total_seconds()
    jobs["t1"] = (jobs["end"] - t0).dt.total_seconds()
    rules = list(dict.fromkeys(jobs["rule"]))
    cmap = plt.get_cmap("tab20")
    colour = {rule: cmap(i % 20) for i, rule in enumerate(rules)}
    rows, labels = 0, []
    fig, ax = plt.subplots(figsize=(10, 3), layout="constrained")
    for node, on_node in jobs.groupby("node", sort=True):
        lanes = _lanes(list(on_node["t0"]), list(on_node["t1"]))
        for (_, job), lane in zip(on_node.iterrows(), lanes, strict=True):
            ax.barh(rows + lane, job["t1"] - job["t0"], left=job["t0"], color=colour[job["rule"]], height=0.8)
        labels += [f"{node} #{i + 1}" for i in range(max(lanes) + 1)]
        rows += max(lanes) + 1
    ax.set_yticks(range(rows), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds since {t0:%Y-%m-%d %H:%M:%S} UTC")
    earlier = len(every_job) - len(jobs)
    if earlier:
        title = f"{len(jobs)} jobs of the latest session; {earlier} earlier jobs not shown"
        ax.set_title(title, fontsize="small")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[r]) for r in rules]
    fig.legend(handles, rules, loc="outside right upper", frameon=False, fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_costs(breakdown: pd.DataFrame, jobs: pd.DataFrame, market: str, path: str) -> None:
    """Dollars by category (left) and per visit, on spot and on demand (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    parts = breakdown[breakdown["category"] != "total"]
    left.barh(parts["category"], parts["usd"], color="tab:blue")
    left.set_xscale("log")
    left.invert_yaxis()
    total = float(breakdown.loc[breakdown["category"] == "total", "usd"].iloc[0])
    left.set_xlabel(f"USD ({market} compute); total ${total:.4f}")
    per_visit = jobs.dropna(subset=["visit"]).groupby("visit")[["usd_on_demand", "usd_spot"]].sum()
    x = per_visit.index.astype(int).astype(str)
    right.bar(x, per_visit["usd_on_demand"], color="lightgray", label="on-demand")
    right.bar(x, per_visit["usd_spot"], color="tab:green", width=0.5, label="spot")
    right.set_xlabel("visit")
    right.set_ylabel("USD (jobs of the visit)")
    right.legend(frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_efficiency(timings: pd.DataFrame, processing_rule: str, path: str) -> None:
    """Wall and CPU time per visit job (rule ``processing_rule``, left) and CPU efficiency
    (CPU / wall) by rule (right).
    """
    jobs = timings[timings["kind"] == "job"]
    visits = jobs[jobs["rule"] == processing_rule].sort_values("visit")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    x = visits["visit"].astype(str)
    _visit_job_times(left, x, visits)
    left.set_xlabel("visit")
    by_rule = jobs.groupby("rule")[["cpu_s", "wall_s"]].sum()
    efficiency = (by_rule["cpu_s"] / by_rule["wall_s"]).sort_values()
    right.barh(efficiency.index, efficiency, color="tab:orange")
    right.axvline(1.0, color="k", lw=0.8, ls="--")
    right.set_xlabel("CPU efficiency (CPU time / wall time, 1 = one core busy)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cutouts(
    previews: dict[int, str],
    sources: dict[int, pd.DataFrame],
    table: pd.DataFrame,
    path: str,
    max_visits: int = 30,
) -> None:
    """One panel per visit (the first ``max_visits``): its first detector's background-subtracted image,
    detections circled, PSF stars in red, with the visit's band, PSF FWHM and source count.

    ``previews`` maps a visit to its ``preview.fits`` (binned images), ``sources`` to its source table.
    """
    import math

    from astropy.io import fits
    from astropy.visualization import ImageNormalize, ZScaleInterval

    visits = sorted(previews)[:max_visits]
    columns = min(3, max(1, len(visits)))
    rows = max(1, math.ceil(len(visits) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.3 * columns, 3.3 * rows), layout="constrained", squeeze=False
    )
    info = table.set_index("visit")
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, visit in zip(axes.flat, visits, strict=False):
        row = info.loc[visit] if visit in info.index else None
        with fits.open(previews[visit]) as hdul:
            if len(hdul) < 2:
                reason = "" if row is None else str(row.get("reason", ""))
                ax.text(0.5, 0.5, f"visit {visit}: failed\n{reason[:60]}", ha="center", va="center",
                        color="tab:red", wrap=True, fontsize=7, transform=ax.transAxes)  # fmt: skip
                continue
            hdu = hdul[1]
            image, factor, detector = hdu.data, int(hdu.header["BIN"]), int(hdu.header["DETECTOR"])
        norm = ImageNormalize(image, interval=ZScaleInterval())
        ax.imshow(image, origin="lower", cmap="gray_r", norm=norm)
        on_detector = sources[visit]
        if "detector" in on_detector:
            on_detector = on_detector[on_detector["detector"] == detector]
        if len(on_detector):
            x = (on_detector["x"].to_numpy() + 0.5) / factor - 0.5
            y = (on_detector["y"].to_numpy() + 0.5) / factor - 0.5
            psf = on_detector["is_psf_star"].to_numpy().astype(bool)
            ax.scatter(x[~psf], y[~psf], s=60, facecolors="none", edgecolors="tab:cyan", linewidths=0.8)
            ax.scatter(x[psf], y[psf], s=90, facecolors="none", edgecolors="tab:red", linewidths=1.2)
        title = f"visit {visit}, detector {detector}"
        if row is not None:
            title += f'\n{row["band"]}: FWHM {row["psf_fwhm_arcsec"]:.2f}", {int(row["n_sources"])} sources'
        ax.set_title(title, fontsize=8)
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
    if len(previews) > max_visits:
        fig.suptitle(f"the first {max_visits} of {len(previews)} visits", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)

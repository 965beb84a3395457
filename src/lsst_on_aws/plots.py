"""Figures of the Snakemake report."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

BAND_COLOURS = {"g": "tab:green", "r": "tab:red", "i": "tab:orange", "z": "tab:purple", "y": "tab:brown"}


def plot_visits(table: pd.DataFrame, path: str) -> None:
    """Four panels per visit: PSF FWHM, sources, sky level, and the job's wall and CPU time.

    Visits that failed have no measurement bars and are marked "failed".
    """
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, layout="constrained")
    colours = [BAND_COLOURS.get(b, "tab:gray") for b in table["band"]]
    x = table["visit"].astype(str)
    panels = [
        (axes[0, 0], "psf_fwhm_arcsec", "PSF FWHM (arcsec)"),
        (axes[0, 1], "n_sources", "sources detected"),
        (axes[1, 0], "sky_level_e", "sky (e- / pixel)"),
    ]
    failed = x[table["status"] != "ok"] if "status" in table else x[:0]
    for ax, column, label in panels:
        ax.bar(x, table[column], color=colours)
        ax.set_ylabel(label)
        for name in failed:  # no bar: say why there is none
            ax.annotate("failed", (name, 0), rotation=90, ha="center", va="bottom", color="tab:red")
    ax = axes[1, 1]
    ax.bar(x, table["wall_s"], color="lightgray", label="wall")
    ax.bar(x, table["cpu_s"], color="tab:blue", width=0.5, label="CPU")
    ax.set_ylabel("process_visit time (s)")
    ax.legend(frameon=False)
    for ax in axes[1]:
        ax.set_xlabel("visit")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c) for b, c in BAND_COLOURS.items() if b in set(table["band"])
    ]
    labels = [b for b in BAND_COLOURS if b in set(table["band"])]
    fig.legend(handles, labels, title="band", loc="outside right upper", frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)

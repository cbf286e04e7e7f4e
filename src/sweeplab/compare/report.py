"""A `Comparison` as people read it: terminal text, learning-curve and test-accuracy PNGs, HTML and Markdown.

Kept apart from the analysis so that it stays pure and from MLflow so that any comparison can be written.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweeplab import tables
from sweeplab.compare.analysis import TARGET_ACCURACY, Comparison


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def display_table(comparison: Comparison) -> pd.DataFrame:
    """The per-group table as people read it (strings), for the terminal, HTML and Markdown."""
    t = comparison.table
    target = f"epochs to {TARGET_ACCURACY:.0%} val_acc"
    shown = pd.DataFrame(index=t.index)
    shown["runs"] = t["runs"].astype(int)
    shown["best val_acc"] = t["val_accuracy_best"].map("{:.4f}".format)
    shown["val_acc mean ± std"] = [
        _mean_std(m, s) for m, s in zip(t["val_accuracy_mean"], t["val_accuracy_std"], strict=False)
    ]
    shown["best test_acc"] = t["test_accuracy_best"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    shown["test_acc mean ± std"] = [
        _mean_std(m, s) for m, s in zip(t["test_accuracy_mean"], t["test_accuracy_std"], strict=False)
    ]
    shown["val_loss mean ± std"] = [
        _mean_std(m, s) for m, s in zip(t["val_loss_mean"], t["val_loss_std"], strict=False)
    ]
    shown[target] = [
        "not reached" if n == 0 else f"{m:.1f} ({n}/{r} runs)"
        for m, n, r in zip(t["epochs_to_target_mean"], t["reached_target"], t["runs"], strict=False)
    ]
    shown["s/epoch"] = t["seconds_per_epoch"].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")
    shown["best run"] = t["best_run_id"]
    shown.index.name = comparison.by
    return shown


def notes(comparison: Comparison) -> list[str]:
    lines = [comparison.verdict]
    pruned = comparison.per_run[comparison.per_run["pruned_at"].notna()] if "pruned_at" in comparison.per_run else []
    if len(pruned):
        counts = pruned.groupby("group").size()
        parts = ", ".join(f"{n} of {group}" for group, n in counts.items())
        lines.append(
            f"Pruned: {len(pruned)} run(s) stopped early by the pruner ({parts}); their final values are from the "
            "epoch they stopped at (marked x in the test accuracy figure)."
        )
    if comparison.left_out:
        parts = ", ".join(f"{n} {why}" for why, n in comparison.left_out.items())
        lines.append(f"Left out: {parts}.")
    return lines


def format_text(comparison: Comparison) -> str:
    header = f"Comparison by {comparison.by}" + (f" - {comparison.title}" if comparison.title else "")
    return "\n".join([header, display_table(comparison).to_string(), "", *notes(comparison)])


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, which sweeplab.plots selects; imported only when plotting."""
    import sweeplab.plots

    return sweeplab.plots.plt


def plot_curves(comparison: Comparison, path: Path) -> Path:
    """Mean val_accuracy and val_loss per epoch for each group, with a ±1 std band across its runs."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ("val_accuracy", "val_loss"), strict=False):
        for group in comparison.table.index:
            c = comparison.curves
            c = c[(c["group"] == group) & (c["metric"] == metric)].sort_values("epoch")
            if c.empty:
                continue
            (line,) = ax.plot(c["epoch"], c["mean"], marker="o", label=f"{group} (n={int(c['runs'].max())})")
            std = c["std"].fillna(0)
            ax.fill_between(c["epoch"], c["mean"] - std, c["mean"] + std, color=line.get_color(), alpha=0.2)
        ax.set_title(f"{metric} (mean ± std across runs)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True)
        ax.legend(title=comparison.by, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_test_accuracy(comparison: Comparison, path: Path) -> Path:
    """Mean test_accuracy per group, error bar = std across runs, each run as a dot."""
    plt = _pyplot()
    t = comparison.table
    groups = [str(g) for g in t.index]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) + 2), 4.5))
    x = np.arange(len(groups))
    ax.bar(
        x,
        t["test_accuracy_mean"],
        yerr=t["test_accuracy_std"].fillna(0),
        capsize=6,
        color="tab:blue",
        alpha=0.7,
    )
    for i, group in enumerate(t.index):
        runs = comparison.per_run[comparison.per_run["group"] == group]
        stopped = runs["pruned_at"].notna() if "pruned_at" in runs else np.zeros(len(runs), bool)
        ax.plot(np.full(int((~stopped).sum()), i), runs.loc[~stopped, "test_accuracy"], "k.", zorder=3)
        ax.plot(np.full(int(stopped.sum()), i), runs.loc[stopped, "test_accuracy"], "rx", zorder=3)
    low = float(np.nanmin(comparison.per_run["test_accuracy"])) if len(comparison.per_run) else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_xticks(x, groups)
    ax.set_xlabel(comparison.by)
    ax.set_ylabel("test_accuracy")
    ax.set_title("test accuracy per group (mean ± std, dots = runs, x = pruned)")
    ax.grid(True, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@dataclass
class SearchFigure:
    """A study's trials for sweeplab.search_plot: one row per trial in order, the objective and its values."""

    trials: pd.DataFrame
    objective: str
    title: str
    params: list[str] = field(default_factory=list)
    maximize: bool = True


def _search_section(search: SearchFigure | None, out_dir: Path, paths: dict[str, Path]) -> tuple[str, list[str]]:
    """search.png, and its HTML and Markdown, for a comparison of one study's runs (nothing otherwise)."""
    if search is None or search.trials.empty:
        return "", []
    from sweeplab.search_plot import plot_search

    path = out_dir / "search.png"
    paths["search"] = plot_search(search.trials, search.objective, path, search.title, search.params, search.maximize)
    image = f'<img alt="the search" src="{_data_uri(paths["search"])}">'
    return f"<h2>The search</h2>{image}", ["![the search](search.png)"]


def write_report(comparison: Comparison, out_dir: Path, search: SearchFigure | None = None) -> dict[str, Path]:
    """curves.png, test_accuracy.png, runs.csv, report.html (self-contained) and report.md in out_dir; with
    `search` (a study's runs), search.png too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "curves": plot_curves(comparison, out_dir / "curves.png"),
        "test_accuracy": plot_test_accuracy(comparison, out_dir / "test_accuracy.png"),
    }
    comparison.per_run.to_csv(out_dir / "runs.csv", index=False)
    paths["runs"] = out_dir / "runs.csv"
    search_html, search_md = _search_section(search, out_dir, paths)
    shown = display_table(comparison)
    title = f"Comparison by {comparison.by}" + (f": {comparison.title}" if comparison.title else "")
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes(comparison))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Verdict</h2>{note_html}
<h2>Groups</h2>{shown.to_html(escape=True)}
{search_html}
<h2>Learning curves</h2><img alt="learning curves" src="{_data_uri(paths["curves"])}">
<h2>Test accuracy</h2><img alt="test accuracy" src="{_data_uri(paths["test_accuracy"])}">
<h2>Runs</h2>{comparison.per_run.to_html(index=False, float_format="{:.4f}".format, escape=True)}
</body></html>
"""
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(page, encoding="utf-8")
    markdown = "\n\n".join(
        [
            f"# {title}",
            *notes(comparison),
            tables.markdown(shown, index=True).rstrip("\n"),
            "![learning curves](curves.png)",
            "![test accuracy](test_accuracy.png)",
            *search_md,
        ]
    )
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(markdown + "\n", encoding="utf-8")
    return paths

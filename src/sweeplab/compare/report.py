"""A `Comparison` as people and tools read it: terminal text, an HTML and Markdown report with figures,
groups.csv and verdict.json. Kept apart from the analysis so that it stays pure and from MLflow so that any
comparison can be written."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from sweeplab import console
from sweeplab.compare import figures
from sweeplab.compare.analysis import TARGET_ACCURACY, Comparison
from sweeplab.compare.stats import ALPHA
from sweeplab.compare.verdict import MIN_SEEDS

GROUP_COLUMNS = ["runs", "mean", "std", "iqm", "ci_low", "ci_high"]  # groups.csv, after `group`


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def _number(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.4f}"


def display_table(comparison: Comparison) -> pd.DataFrame:
    """The per-group table as people read it (strings), for the terminal, HTML and Markdown."""
    t = comparison.table
    name = f"{comparison.metric.replace('accuracy', 'acc')} ({comparison.at})"
    shown = pd.DataFrame(index=t.index)
    shown["runs"] = t["runs"].astype(int)
    shown[f"{name} mean ± std"] = [_mean_std(m, s) for m, s in zip(t["mean"], t["std"], strict=True)]
    shown["IQM"] = t["iqm"].map(_number)
    shown[f"{1 - ALPHA:.0%} CI"] = [
        f"{_number(lo)} - {_number(hi)}" for lo, hi in zip(t["ci_low"], t["ci_high"], strict=True)
    ]
    shown["best"] = t["best"].map(_number)
    if t["test_accuracy_mean"].notna().any():  # classification runs
        shown["test_acc mean ± std"] = [
            _mean_std(m, s) for m, s in zip(t["test_accuracy_mean"], t["test_accuracy_std"], strict=True)
        ]
    if comparison.metric != "val_loss":
        shown["val_loss mean ± std"] = [
            _mean_std(m, s) for m, s in zip(t["val_loss_mean"], t["val_loss_std"], strict=True)
        ]
    if t["test_accuracy_mean"].notna().any():
        shown[f"epochs to {TARGET_ACCURACY:.0%} val_acc"] = [
            "not reached" if n == 0 else f"{m:.1f} ({n}/{r} runs)"
            for m, n, r in zip(t["epochs_to_target_mean"], t["reached_target"], t["runs"], strict=True)
        ]
    shown["s/epoch"] = t["seconds_per_epoch"].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")
    shown["best run"] = t["best_run_id"]
    shown.index.name = comparison.by
    return shown


def method_note(comparison: Comparison) -> str:
    return (
        f"Compared: {comparison.metric} at the {comparison.at} epoch of each run (--at {comparison.at}). "
        f"Intervals: {1 - ALPHA:.0%} stratified percentile bootstrap of the mean, expanded for few runs "
        f"({comparison.resamples:,} resamples, seed {comparison.seed}); P(A > B), the chance that A is better "
        f"({'higher' if comparison.maximize else 'lower'} {comparison.metric}), counts ties as 1/2; fewer "
        f"than {MIN_SEEDS} runs per group are never called distinguishable."
    )


def notes(comparison: Comparison) -> list[str]:
    lines = [*comparison.verdict.splitlines(), method_note(comparison)]
    pruned = comparison.per_run[comparison.per_run["pruned_at"].notna()]
    if len(pruned):
        counts = pruned.groupby("group").size()
        parts = ", ".join(f"{n} of {group}" for group, n in counts.items())
        lines.append(
            f"Pruned: {len(pruned)} run(s) stopped early by the pruner ({parts}); their values are from the "
            "epochs they reached (marked x in the groups figure)."
        )
    if comparison.left_out:
        parts = ", ".join(f"{n} {why}" for why, n in comparison.left_out.items())
        lines.append(f"Left out: {parts}.")
    return lines


def format_text(comparison: Comparison) -> str:
    header = f"Comparison by {comparison.by}" + (f" - {comparison.title}" if comparison.title else "")
    return "\n".join([header, display_table(comparison).to_string(), "", *notes(comparison)])


def _plain(value: Any) -> Any:
    """A value JSON can hold: NaN as null, numpy scalars as Python numbers."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = float(value) if isinstance(value, float) else int(value)
        return None if isinstance(value, float) and math.isnan(value) else value
    return value.item() if hasattr(value, "item") else value


def verdict_record(comparison: Comparison) -> dict[str, Any]:
    """What verdict.json holds: the winner against the runner-up first, then every comparison."""
    first = comparison.comparisons[0] if comparison.comparisons else None
    record = {
        "winner": comparison.winner,
        "runner_up": comparison.runner_up,
        "p_improvement": first.p_improvement if first else None,
        "p_ci_low": first.p_ci_low if first else None,
        "p_ci_high": first.p_ci_high if first else None,
        "distinguishable": comparison.distinguishable,
        "difference": first.difference if first else None,
        "diff_ci_low": first.diff_ci_low if first else None,
        "diff_ci_high": first.diff_ci_high if first else None,
        "paired": first.paired if first else None,
        "seeds": first.seeds if first else None,
        "seeds_needed": comparison.seeds_needed,
        "metric": comparison.metric,
        "at": comparison.at,
        "by": comparison.by,
        "alpha": ALPHA,
        "resamples": comparison.resamples,
        "seed": comparison.seed,
        "verdict": comparison.verdict,
        "comparisons": [{k: _plain(v) for k, v in dataclasses.asdict(r).items()} for r in comparison.comparisons],
    }
    return {k: _plain(v) for k, v in record.items()}


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@dataclass
class SearchFigure:
    """A study's trials for sweeplab.plots.plot_search: one row per trial in order, the objective and its values."""

    trials: pd.DataFrame
    objective: str
    title: str
    params: list[str] = field(default_factory=list)
    maximize: bool = True


FIGURE_TITLES = {
    "groups": "Groups: mean and 95% interval",
    "improvement": "Probability of improvement",
    "curves": "Learning curves",
    "expected_best": "Expected best score against trials",
    "search": "The search",
}


def write_report(comparison: Comparison, out_dir: Path, search: SearchFigure | None = None) -> dict[str, Path]:
    """groups.csv, verdict.json, runs.csv, the figures (groups, improvement, curves; expected_best for a
    sampled study's runs, search for a study's), report.html (self-contained) and report.md in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = draw_figures(comparison, out_dir, search)
    paths = {key: path for key, (_, path) in images.items()}
    groups = comparison.table[GROUP_COLUMNS].rename_axis("group").reset_index()
    paths["groups_csv"] = out_dir / "groups.csv"
    groups.to_csv(paths["groups_csv"], index=False)
    paths["verdict"] = out_dir / "verdict.json"
    paths["verdict"].write_text(json.dumps(verdict_record(comparison), indent=2) + "\n", encoding="utf-8")
    paths["runs"] = out_dir / "runs.csv"
    comparison.per_run.to_csv(paths["runs"], index=False)
    title = f"Comparison by {comparison.by}" + (f": {comparison.title}" if comparison.title else "")
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(html_page(comparison, title, list(images.values())), encoding="utf-8")
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(markdown_page(comparison, title, list(images.values())), encoding="utf-8")
    return paths


def draw_figures(comparison: Comparison, out_dir: Path, search: SearchFigure | None) -> dict[str, tuple[str, Path]]:
    """The report's figures as PNG files in out_dir, by key: (title, path)."""
    paths = {
        "groups": figures.plot_groups(comparison, out_dir / "groups.png"),
        "improvement": figures.plot_improvement(comparison, out_dir / "improvement.png"),
        "curves": figures.plot_curves(comparison, out_dir / "curves.png"),
    }
    if comparison.expected_best is not None and not comparison.expected_best.empty:
        paths["expected_best"] = figures.plot_expected_best(comparison, out_dir / "expected_best.png")
    if search is not None and not search.trials.empty:
        from sweeplab.plots import plot_search

        paths["search"] = plot_search(
            search.trials, search.objective, out_dir / "search.png", search.title, search.params, search.maximize
        )
    return {key: (FIGURE_TITLES[key], path) for key, path in paths.items()}


def html_page(comparison: Comparison, title: str, images: list[tuple[str, Path]]) -> str:
    """report.html: the page template (compare/report.html) filled in, its figures inline, so one file is all."""
    page = Template(resources.files("sweeplab.compare").joinpath("report.html").read_text(encoding="utf-8"))
    return page.substitute(
        title=html.escape(title),
        notes="".join(f"<p>{html.escape(n)}</p>" for n in notes(comparison)),
        groups=display_table(comparison).to_html(escape=True),
        figures="\n".join(
            f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="{_data_uri(p)}">' for t, p in images
        ),
        runs=comparison.per_run.to_html(index=False, float_format="{:.4f}".format, escape=True),
    )


def markdown_page(comparison: Comparison, title: str, images: list[tuple[str, Path]]) -> str:
    """report.md: the notes, the groups table and the figures beside it."""
    parts = [
        f"# {title}",
        *notes(comparison),
        console.markdown(display_table(comparison), index=True).rstrip("\n"),
        *(f"![{t}]({p.name})" for t, p in images),
    ]
    return "\n\n".join(parts) + "\n"

"""Compare groups of runs (by optimizer, lr, any param): a table, learning curves, a winner against the noise.

`compare_runs` is pure (pandas in, a `Comparison` out); `load_runs` reads MLflow and `write_report` writes
PNG, HTML and Markdown, so the sweep's end can call `report_for_sweep` and users call `python compare.py`.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

METRIC = "val_accuracy"  # the metric that names the winner (final epoch, mean over the group's runs)
TARGET_ACCURACY = 0.85  # "epochs to reach 85% val_accuracy"
HISTORY_KEYS = ("val_accuracy", "val_loss", "epoch_time")
FINISHED = RunStatus.to_string(RunStatus.FINISHED)
PARENT_TAG = "mlflow.parentRunId"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class CompareError(RuntimeError):
    """Nothing to compare (no experiment, no runs, unknown param); the message is one line."""


@dataclass
class RunSet:
    """Runs read from MLflow: search_runs' frame and each run's per-epoch history (index = epoch, from 0)."""

    runs: pd.DataFrame
    histories: dict[str, pd.DataFrame]
    experiment: str
    sweep: str | None = None  # the parent run's id when restricted to one sweep
    sweep_name: str | None = None


@dataclass
class Comparison:
    by: str  # the param key runs were grouped by, e.g. optimizer.name
    per_run: pd.DataFrame  # one row per counted run: group, final metrics, epochs to target, s/epoch
    table: pd.DataFrame  # one row per group (index), numeric
    curves: pd.DataFrame  # group, epoch (1-based), metric, mean, std, runs
    winner: str | None
    runner_up: str | None
    margin: float | None  # winner's mean METRIC minus the runner-up's
    noise: float | None  # the larger std of the two groups (None: a group has a single run)
    verdict: str
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count
    title: str = ""


# ---------------------------------------------------------------------------------------------- pure part


def group_sort_key(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order ('0.001' < '0.01' < '0.1'), then other values alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def resolve_param(columns: pd.Index, by: str) -> str:
    """`optimizer` means optimizer.name (the optimizer group's choice); any exact param name works too."""
    params = [c.removeprefix("params.") for c in columns if c.startswith("params.")]
    for candidate in (by, f"{by}.name"):
        if candidate in params:
            return candidate
    known = ", ".join(sorted(p for p in params if "." not in p or p.endswith(".name")))
    raise CompareError(f"no run has a param '{by}'; group by one of: {known}")


def epochs_to_reach(history: pd.DataFrame | None, target: float = TARGET_ACCURACY) -> float:
    """The first epoch (1-based) whose val_accuracy reached `target`, NaN if none did."""
    if history is None or "val_accuracy" not in history:
        return math.nan
    reached = history.index[history["val_accuracy"] >= target]
    return float(reached[0] + 1) if len(reached) else math.nan


def _final(run: pd.Series, history: pd.DataFrame | None, key: str) -> float:
    if history is not None and key in history and history[key].notna().any():
        return float(history[key].dropna().iloc[-1])
    value = run.get(f"metrics.{key}")
    return float(value) if value is not None and pd.notna(value) else math.nan


def per_run_table(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], param: str) -> pd.DataFrame:
    rows = []
    for _, run in runs.iterrows():
        history = histories.get(run["run_id"])
        times = history["epoch_time"] if history is not None and "epoch_time" in history else pd.Series()
        rows.append(
            {
                "group": str(run[f"params.{param}"]),
                "run_id": run["run_id"],
                "run_name": run.get("tags.mlflow.runName", ""),
                "val_accuracy": _final(run, history, "val_accuracy"),
                "val_loss": _final(run, history, "val_loss"),
                "test_accuracy": _final(run, history, "test_accuracy"),
                "epochs_to_target": epochs_to_reach(history),
                "seconds_per_epoch": float(times.mean()) if len(times) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def group_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per group: run count, best/mean/std of the final metrics, epochs to target, s/epoch, best run."""
    grouped = per_run.groupby("group", sort=False)
    table = pd.DataFrame(
        {
            "runs": grouped.size(),
            "val_accuracy_best": grouped["val_accuracy"].max(),
            "val_accuracy_mean": grouped["val_accuracy"].mean(),
            "val_accuracy_std": grouped["val_accuracy"].std(),  # ddof=1; NaN for a single run
            "test_accuracy_best": grouped["test_accuracy"].max(),
            "test_accuracy_mean": grouped["test_accuracy"].mean(),
            "test_accuracy_std": grouped["test_accuracy"].std(),
            "val_loss_mean": grouped["val_loss"].mean(),
            "val_loss_std": grouped["val_loss"].std(),
            "epochs_to_target_mean": grouped["epochs_to_target"].mean(),
            "reached_target": grouped["epochs_to_target"].count(),
            "seconds_per_epoch": grouped["seconds_per_epoch"].mean(),
            "best_run_id": per_run.loc[grouped["val_accuracy"].idxmax(), ["group", "run_id"]].set_index("group")[
                "run_id"
            ],
        }
    )
    table.index.name = None
    return table.loc[sorted(table.index, key=group_sort_key)]


def curve_table(per_run: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean and std across a group's runs of val_accuracy and val_loss at each epoch."""
    columns: dict[str, list] = {"group": [], "epoch": [], "metric": [], "v": []}
    for run_id, group in zip(per_run["run_id"], per_run["group"], strict=True):
        history = histories.get(run_id)
        if history is None:
            continue
        for metric in ("val_accuracy", "val_loss"):
            if metric in history:
                values = history[metric].dropna()
                columns["group"].append(np.full(len(values), group, dtype=object))
                columns["epoch"].append(values.index.to_numpy() + 1)
                columns["metric"].append(np.full(len(values), metric, dtype=object))
                columns["v"].append(values.to_numpy())
    if not columns["v"]:
        return pd.DataFrame(columns=["group", "epoch", "metric", "mean", "std", "runs"])
    long = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    curves = long.groupby(["group", "metric", "epoch"])["v"].agg(["mean", "std", "count"]).reset_index()
    return curves.rename(columns={"count": "runs"})


def judge(table: pd.DataFrame) -> tuple[str | None, str | None, float | None, float | None, str]:
    """Winner by mean final METRIC; does its lead over the runner-up exceed the spread across seeds?"""
    if table.empty:
        return None, None, None, None, "No finished runs to compare."
    ranked = table.sort_values(f"{METRIC}_mean", ascending=False, kind="stable")
    winner = str(ranked.index[0])
    best = ranked.iloc[0]
    if len(ranked) == 1:
        return winner, None, None, None, f"Only one group ({winner}): nothing to compare it with."
    runner_up = str(ranked.index[1])
    second = ranked.iloc[1]
    margin = float(best[f"{METRIC}_mean"] - second[f"{METRIC}_mean"])
    lead = (
        f"{winner} wins on mean final {METRIC} ({best[f'{METRIC}_mean']:.4f} over {int(best['runs'])} run(s) "
        f"vs {second[f'{METRIC}_mean']:.4f} for runner-up {runner_up}): a lead of {margin:.4f}"
    )
    if best["runs"] < 2 or second["runs"] < 2:
        return (
            winner,
            runner_up,
            margin,
            None,
            (
                f"{lead}, but with a single run per group there is no spread across seeds to judge it by: "
                "sweep more seeds before trusting it."
            ),
        )
    noise = float(max(best[f"{METRIC}_std"], second[f"{METRIC}_std"]))
    if margin > noise:
        verdict = f"{lead}, larger than the spread across seeds (std up to {noise:.4f}): a real lead."
    else:
        verdict = (
            f"{lead}, within the spread across seeds (std up to {noise:.4f}): too close to call, this could be noise."
        )
    return winner, runner_up, margin, noise, verdict


def compare_runs(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], by: str, title: str = "") -> Comparison:
    """Group FINISHED runs by the param `by` and compare them; other runs are counted in `left_out`."""
    if runs.empty:
        raise CompareError(f"no runs to compare{' in ' + title if title else ''}")
    param = resolve_param(runs.columns, by)
    left_out: dict[str, int] = {}
    finished = runs["status"] == FINISHED
    for status, count in runs.loc[~finished, "status"].value_counts().items():
        left_out[f"not finished ({status})"] = int(count)
    counted = runs[finished]
    has_param = counted[f"params.{param}"].notna()
    if (~has_param).any():
        left_out[f"without param {param} (e.g. sweep parents)"] = int((~has_param).sum())
    counted = counted[has_param]
    if counted.empty:
        raise CompareError(f"no FINISHED run with param {param}{' in ' + title if title else ''}")
    per_run = per_run_table(counted, histories, param)
    table = group_table(per_run)
    winner, runner_up, margin, noise, verdict = judge(table)
    return Comparison(
        by=param,
        per_run=per_run,
        table=table,
        curves=curve_table(per_run, histories),
        winner=winner,
        runner_up=runner_up,
        margin=margin,
        noise=noise,
        verdict=verdict,
        left_out=left_out,
        title=title,
    )


# -------------------------------------------------------------------------------------------- formatting


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
    if comparison.left_out:
        parts = ", ".join(f"{n} {why}" for why, n in comparison.left_out.items())
        lines.append(f"Left out: {parts}.")
    return lines


def format_text(comparison: Comparison) -> str:
    header = f"Comparison by {comparison.by}" + (f" - {comparison.title}" if comparison.title else "")
    return "\n".join([header, display_table(comparison).to_string(), "", *notes(comparison)])


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs tabulate, which this project does not install)."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    rows = [[str(i), *map(str, r)] for i, r in zip(frame.index, frame.itertuples(index=False), strict=False)]
    cells = [[c.replace("|", "\\|") for c in row] for row in [header, *rows]]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- plots


def plot_curves(comparison: Comparison, path: Path) -> Path:
    """Mean val_accuracy and val_loss per epoch for each group, with a ±1 std band across its runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        values = comparison.per_run.loc[comparison.per_run["group"] == group, "test_accuracy"]
        ax.plot(np.full(len(values), i), values, "k.", zorder=3)
    low = float(np.nanmin(comparison.per_run["test_accuracy"])) if len(comparison.per_run) else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_xticks(x, groups)
    ax.set_xlabel(comparison.by)
    ax.set_ylabel("test_accuracy")
    ax.set_title("test accuracy per group (mean ± std, dots = runs)")
    ax.grid(True, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------- reports


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(comparison: Comparison, out_dir: Path) -> dict[str, Path]:
    """curves.png, test_accuracy.png, runs.csv, report.html (self-contained) and report.md in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "curves": plot_curves(comparison, out_dir / "curves.png"),
        "test_accuracy": plot_test_accuracy(comparison, out_dir / "test_accuracy.png"),
    }
    comparison.per_run.to_csv(out_dir / "runs.csv", index=False)
    paths["runs"] = out_dir / "runs.csv"
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
            markdown_table(shown),
            "![learning curves](curves.png)",
            "![test accuracy](test_accuracy.png)",
        ]
    )
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(markdown + "\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------- MLflow I/O


def find_sweep(client: MlflowClient, sweep: str, experiment_ids: list[str] | None = None) -> mlflow.entities.Run:
    """A sweep's parent run, by run id or by run name (the newest run of that name)."""
    if _RUN_ID.match(sweep):
        try:
            return client.get_run(sweep)
        except mlflow.exceptions.MlflowException:
            pass
    ids = experiment_ids or [e.experiment_id for e in client.search_experiments()]
    name = sweep.replace("'", "\\'")
    found = client.search_runs(ids, filter_string=f"attributes.run_name = '{name}'", order_by=["start_time DESC"])
    if not found:
        raise CompareError(f"no sweep '{sweep}': give a parent run id or a parent run's name")
    return found[0]


def _history(client: MlflowClient, run_id: str) -> pd.DataFrame:
    columns = {}
    for key in HISTORY_KEYS:
        points = client.get_metric_history(run_id, key)
        if points:
            columns[key] = pd.Series({p.step: p.value for p in points}, dtype=float)
    return pd.DataFrame(columns).sort_index()


def _history_points(store: object, run_ids: list[str]) -> pd.DataFrame | None:
    """(run_id, key, step, value) of HISTORY_KEYS for these runs, read in one column query per 500 runs.

    Only on MLflow's SQL store (SQLite, PostgreSQL, MySQL) and its `metrics` table; None elsewhere, where
    the caller goes through the API. The store's own bulk call builds an ORM object per point, most of the
    time over 1,000 runs.
    """
    try:
        from mlflow.store.tracking.dbmodels.models import SqlMetric

        sessions = store.ManagedSessionMaker  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None
    rows: list[tuple] = []
    with sessions() as session:
        for start in range(0, len(run_ids), 500):  # SQLite limits the size of an IN (...) list
            rows += (
                session.query(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
                .filter(SqlMetric.run_uuid.in_(run_ids[start : start + 500]), SqlMetric.key.in_(HISTORY_KEYS))
                .order_by(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.timestamp)
                .all()
            )
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "is_nan"])
    frame.loc[frame["is_nan"].astype(bool), "value"] = math.nan  # MLflow stores NaN as 0 with is_nan set
    return frame.drop(columns="is_nan")


def _histories(client: MlflowClient, run_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Every run's history: a few column queries on a database store, else one call per run and metric.

    MlflowClient has no bulk call; one call per run and metric takes about 40 s over 1,000 runs on SQLite.
    """
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    frame = None if store is None else _history_points(store, run_ids)
    if frame is None:
        return {run_id: _history(client, run_id) for run_id in run_ids}
    wide = frame.pivot_table(index=["run_id", "step"], columns="key", values="value", aggfunc="last")
    wide.columns.name = None
    found = {
        run_id: table.droplevel("run_id").dropna(axis=1, how="all").astype(float)
        for run_id, table in wide.groupby(level="run_id", sort=False)
    }
    return {run_id: found.get(run_id, pd.DataFrame()) for run_id in run_ids}


def load_runs(experiment: str | None = None, sweep: str | None = None, tracking_uri: str | None = None) -> RunSet:
    """Runs of an experiment (default fashion_mnist), or only a sweep's children, with their histories."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment) if experiment else None
    if experiment and exp is None:
        raise CompareError(f"no experiment '{experiment}' in {client.tracking_uri}")
    parent = None
    if sweep:
        parent = find_sweep(client, sweep, [exp.experiment_id] if exp else None)
        exp = client.get_experiment(parent.info.experiment_id)
    elif exp is None:
        exp = client.get_experiment_by_name("fashion_mnist")
        if exp is None:
            raise CompareError(f"no experiment 'fashion_mnist' in {client.tracking_uri}: give --experiment NAME")
    query = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'" if parent else ""
    runs = mlflow.search_runs(
        experiment_ids=[exp.experiment_id], filter_string=query, max_results=100_000, output_format="pandas"
    )
    where = f"experiment '{exp.name}'" + (f", sweep '{parent.info.run_name}' ({parent.info.run_id})" if parent else "")
    if runs.empty:
        raise CompareError(f"no runs in {where}")
    histories = _histories(client, list(runs["run_id"]))
    return RunSet(
        runs=runs,
        histories=histories,
        experiment=exp.name,
        sweep=parent.info.run_id if parent else None,
        sweep_name=parent.info.run_name if parent else None,
    )


def title_of(run_set: RunSet) -> str:
    if run_set.sweep:
        return f"experiment {run_set.experiment}, sweep {run_set.sweep_name} ({run_set.sweep[:8]})"
    return f"experiment {run_set.experiment}"


def default_out_dir(run_set: RunSet, by: str) -> Path:
    """reports/<experiment>[-<sweep id>]-<by>."""
    parts = [run_set.experiment, *([run_set.sweep[:8]] if run_set.sweep else []), by]
    return Path("reports") / re.sub(r"[^\w.-]+", "_", "-".join(parts))


def log_report(run_id: str, paths: dict[str, Path], tracking_uri: str | None = None) -> None:
    """The report files as artifacts of the sweep's parent run, under comparison/."""
    client = MlflowClient(tracking_uri=tracking_uri)
    for path in paths.values():
        client.log_artifact(run_id, str(path), artifact_path="comparison")


def report_for_sweep(
    parent_run_id: str, by: str = "optimizer", out_dir: Path | None = None, tracking_uri: str | None = None
) -> str:
    """Compare a finished sweep's children, write and log the report; returns the text to print."""
    run_set = load_runs(sweep=parent_run_id, tracking_uri=tracking_uri)
    comparison = compare_runs(run_set.runs, run_set.histories, by, title=title_of(run_set))
    out = out_dir or default_out_dir(run_set, comparison.by)
    paths = write_report(comparison, out)
    log_report(parent_run_id, paths, tracking_uri=tracking_uri)
    return format_text(comparison) + f"\nReport: {paths['html']}"

"""compare.py on a real small sweep: groups, means and winner checked against MlflowClient's own numbers."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from conftest import SWEEP_NAME, run_cli
from sweeplab.cli import compare as compare_cli
from sweeplab.compare.analysis import compare_runs
from sweeplab.compare.runs import load_runs, report_for_sweep
from sweeplab.errors import CompareError


def finished_children(sweep: dict) -> dict[str, list[dict]]:
    """optimizer -> the FINISHED children's final metrics, read straight from MlflowClient."""
    client = MlflowClient(tracking_uri=sweep["uri"])
    runs = client.search_runs([sweep["experiment_id"]], f"tags.mlflow.parentRunId = '{sweep['parent_id']}'")
    groups: dict[str, list[dict]] = {}
    for run in runs:
        if run.info.status == "FINISHED":
            groups.setdefault(run.data.params["optimizer.name"], []).append(
                {"run_id": run.info.run_id, **run.data.metrics}
            )
    return groups


@pytest.mark.slow
def test_compare_cli_on_the_sweep_prints_table_writes_report_and_logs_it(small_sweep: dict, tmp_path) -> None:
    groups = finished_children(small_sweep)
    assert {g: len(r) for g, r in groups.items()} == {"adam": 2, "sgd": 2}
    means = {g: statistics.mean(r["val_accuracy"] for r in runs) for g, runs in groups.items()}
    winner, runner_up = sorted(means, key=means.get, reverse=True)

    out = tmp_path / "report"
    result = run_cli(
        ["--by", "optimizer", "--sweep", SWEEP_NAME, "--out", str(out)],
        cwd=small_sweep["folder"],
        env={"MLFLOW_TRACKING_URI": small_sweep["uri"]},
        script="compare.py",
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"{winner} leads runner-up {runner_up} on val_accuracy at the last epoch" in text
    assert f"mean {means[winner]:.4f} vs {means[runner_up]:.4f}" in text
    assert "not distinguishable with 2 seeds" in text  # 2 seeds per group are never enough
    assert "Left out: 1 not finished (FAILED)" in text
    assert "rmsprop" not in text  # the run outside the sweep is not part of it
    for group, runs in groups.items():
        row = next(line for line in text.splitlines() if line.startswith(group + " "))
        assert row.split()[1] == str(len(runs))
        assert max(runs, key=lambda r: r["val_accuracy"])["run_id"] in row

    for png in ("groups.png", "improvement.png", "curves.png"):
        with Image.open(out / png) as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 300
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # self-contained: groups, P(A > B), curves, the search
    assert "<h2>The search</h2>" in page and (out / "search.png").is_file()
    assert all(f"<th>{group}</th>" in page for group in groups)
    assert "paired by seed over 2 seeds" in page
    assert f"| {winner} | 2 |" in (out / "report.md").read_text()
    logged = {a.path for a in MlflowClient(small_sweep["uri"]).list_artifacts(small_sweep["parent_id"], "comparison")}
    assert {"comparison/report.html", "comparison/report.md", "comparison/curves.png"} <= logged
    assert {"comparison/groups.csv", "comparison/verdict.json", "comparison/improvement.png"} <= logged


def test_compare_runs_matches_client_numbers(small_sweep: dict) -> None:
    groups = finished_children(small_sweep)
    run_set = load_runs(sweep=small_sweep["parent_id"], tracking_uri=small_sweep["uri"])
    comparison = compare_runs(run_set.runs, run_set.histories, "optimizer")
    table = comparison.table
    assert comparison.by == "optimizer.name"
    assert list(table.index) == ["adam", "sgd"]
    for group, runs in groups.items():
        accuracies = [r["val_accuracy"] for r in runs]
        assert table.loc[group, "runs"] == len(runs)
        assert table.loc[group, "mean"] == pytest.approx(statistics.mean(accuracies))
        assert table.loc[group, "std"] == pytest.approx(statistics.stdev(accuracies))
        assert table.loc[group, "ci_low"] <= table.loc[group, "mean"] <= table.loc[group, "ci_high"]
        assert table.loc[group, "test_accuracy_mean"] == pytest.approx(
            statistics.mean(r["test_accuracy"] for r in runs)
        )
        assert table.loc[group, "seconds_per_epoch"] > 0
    means = {g: statistics.mean(r["val_accuracy"] for r in runs) for g, runs in groups.items()}
    winner = max(means, key=means.get)
    assert comparison.winner == winner and not comparison.distinguishable
    assert comparison.comparisons[0].difference == pytest.approx(abs(means["adam"] - means["sgd"]))
    assert comparison.comparisons[0].paired  # both groups ran seeds 0 and 1
    assert comparison.left_out == {"not finished (FAILED)": 1}
    # 2 epochs on 1,000 images stay below 85%: curves have both epochs, the target is not reached.
    assert set(comparison.curves["epoch"]) == {1, 2}
    assert table["reached_target"].sum() == 0


def test_whole_experiment_counts_the_outside_run_and_leaves_out_the_parent(small_sweep: dict) -> None:
    # The store as the fixture left it: other tests write to the shared one (models, reports) meanwhile.
    run_set = load_runs(experiment="fashion_mnist", tracking_uri=small_sweep["snapshot"])
    comparison = compare_runs(run_set.runs, run_set.histories, "optimizer")
    assert list(comparison.table.index) == ["adam", "rmsprop", "sgd"]
    rmsprop = comparison.table.loc["rmsprop"]
    assert rmsprop["epochs_to_target_mean"] == 2  # 0.86 at the second epoch
    assert rmsprop["mean"] == pytest.approx(0.88)
    assert comparison.winner == "rmsprop" and "a single run has no spread to judge by" in comparison.verdict
    assert comparison.left_out == {"not finished (FAILED)": 1, "study parents": 1}


def frame(rows: list[tuple[str, float]], param: str = "lr") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run_id": f"r{i}",
                "status": "FINISHED",
                f"params.{param}": v,
                "metrics.val_accuracy": a,
                "metrics.test_accuracy": a,
                "metrics.val_loss": 1 - a,
            }
            for i, (v, a) in enumerate(rows)
        ]
    )


def test_numeric_groups_sort_as_numbers_and_a_close_lead_is_not_distinguishable() -> None:
    runs = frame(
        [("0.1", 0.80), ("0.1", 0.84), ("0.1", 0.82), ("0.1", 0.81), ("0.1", 0.83)]
        + [("0.01", 0.83), ("0.01", 0.85), ("0.01", 0.84), ("0.01", 0.86), ("0.01", 0.82)]
        + [("0.001", 0.70), ("0.001", 0.71), ("0.001", 0.72), ("0.001", 0.69), ("0.001", 0.73)]
    )
    comparison = compare_runs(runs, {}, "lr")
    assert list(comparison.table.index) == ["0.001", "0.01", "0.1"]
    assert comparison.winner == "0.01" and comparison.runner_up == "0.1"
    assert comparison.comparisons[0].difference == pytest.approx(0.02) and not comparison.comparisons[0].paired
    assert "not distinguishable with 5 seeds; about" in comparison.verdict
    assert comparison.comparisons[1].distinguishable  # 0.01 against 0.001, Holm-corrected


def test_a_lead_beyond_the_noise_is_distinguishable() -> None:
    rows = [("a", 0.90 + i / 100) for i in range(5)] + [("b", 0.80 + i / 100) for i in range(5)]
    comparison = compare_runs(frame(rows, "activation"), {}, "activation")
    assert comparison.winner == "a" and comparison.distinguishable
    assert "a beats runner-up b" in comparison.verdict


def test_missing_experiment_is_one_clear_line(small_sweep: dict) -> None:
    result = run_cli(
        ["--experiment", "no_such_experiment"],
        cwd=small_sweep["folder"],
        env={"MLFLOW_TRACKING_URI": small_sweep["uri"]},
        script="compare.py",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"compare: error: no experiment 'no_such_experiment' in {small_sweep['uri']}"


def test_empty_experiment_unknown_param_and_sweep_are_clear_errors(small_sweep: dict, capsys) -> None:
    MlflowClient(small_sweep["uri"]).create_experiment("empty")
    for argv, message in [
        (["--experiment", "empty"], "compare: error: no runs in experiment 'empty'"),
        (["--by", "colour"], "compare: error: no run has a param 'colour'; group by one of:"),
        (["--sweep", "no-such-sweep"], "compare: error: no sweep 'no-such-sweep'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            compare_cli.main([*argv, "--tracking-uri", small_sweep["uri"]])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(CompareError, match="no runs to compare"):
        compare_runs(pd.DataFrame(), {}, "optimizer")


def test_report_for_sweep_returns_the_text_the_sweep_prints(small_sweep: dict, tmp_path) -> None:
    text = report_for_sweep(small_sweep["parent_id"], "lr", out_dir=tmp_path, tracking_uri=small_sweep["uri"])
    assert text.startswith(f"Comparison by lr - experiment fashion_mnist, sweep {SWEEP_NAME}")
    assert "0.001 leads runner-up 0.01" in text or "0.01 leads runner-up 0.001" in text
    assert (tmp_path / "report.html").is_file()


@pytest.mark.slow
def test_the_sweep_printed_its_comparison(small_sweep: dict) -> None:
    """The report printed at the end of the sweep (sweep/summary.py) is compare.py's for the sweep's runs."""
    from sweeplab.compare.report import display_table
    from sweeplab.compare.runs import compare_run_set

    printed = small_sweep["output"]
    assert "no comparison report" not in printed
    run_set = load_runs(sweep=small_sweep["parent_id"], tracking_uri=small_sweep["snapshot"])
    by = "optimizer.name"  # the swept axis, as the sweep named it
    comparison = compare_run_set(run_set, by, "last", "val_accuracy", "max")
    assert printed.count(f"Comparison by {by} - experiment fashion_mnist, sweep ") == 1, printed[-3000:]
    printed = printed[printed.index(f"Comparison by {by}") :]
    assert display_table(comparison).to_string() in printed, printed[-3000:]
    assert all(line in printed for line in comparison.verdict.splitlines()), printed[-3000:]
    assert "Report: " in printed


def test_a_failing_comparison_report_is_said_on_stderr(tmp_path: Path, capsys) -> None:
    """The sweep is done when its report is made: a report that fails does not fail it, but is seen."""
    from sweeplab.objective import objective_from
    from sweeplab.sweep.summary import print_comparison

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.search_experiments()  # the store made (MLflow logs that on stderr) before the output is read
    capsys.readouterr()
    table = pd.DataFrame({"job": [1], "status": ["FINISHED"], "run_id": ["r1"]})
    print_comparison("no-such-parent", {"lr": "0.1,0.01"}, table, objective_from("val_accuracy", "max"))
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("sweeplab: no comparison report ("), (out, err)


def test_a_study_of_seed_runs_counts_its_grandchildren_not_the_aggregates(tmp_path, capsys) -> None:
    """The layout of seeds=N: study parent -> one aggregate run per config (tag sweeplab.seeds) -> its seed runs."""
    from sweeplab.tracking import tags

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("fashion_mnist", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(exp, run_name="study", tags={tags.ROLE: "study", tags.STUDY_KIND: "sweeper"})
    for optimizer, base in (("adam", 0.86), ("sgd", 0.82)):
        job = {tags.PARENT: parent.info.run_id, tags.ROLE: "job", tags.SEEDS: "5", tags.CONFIG_GROUP: optimizer}
        aggregate = client.create_run(exp, tags=job)
        client.log_param(aggregate.info.run_id, "optimizer.name", optimizer)
        client.log_metric(aggregate.info.run_id, "val_accuracy", base)
        for seed in range(5):
            seed_tags = {tags.PARENT: aggregate.info.run_id, tags.ROLE: tags.ROLE_SEED, tags.CONFIG_GROUP: optimizer}
            run = client.create_run(exp, tags=seed_tags)
            client.log_param(run.info.run_id, "optimizer.name", optimizer)
            client.log_param(run.info.run_id, "seed", str(seed))
            for step, value in enumerate((base - 0.05, base + 0.001 * seed)):
                client.log_metric(run.info.run_id, "val_accuracy", value, step=step)
            client.set_terminated(run.info.run_id, "FINISHED")
        client.set_terminated(aggregate.info.run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, "FINISHED")

    out = tmp_path / "report"
    compare_cli.main(["--sweep", parent.info.run_id, "--tracking-uri", uri, "--out", str(out)])
    text = capsys.readouterr().out
    assert "Left out: 2 aggregates of seed runs (their seeds are counted)." in text
    groups = pd.read_csv(out / "groups.csv").set_index("group")
    assert list(groups["runs"]) == [5, 5] and groups.loc["adam", "mean"] == pytest.approx(0.862)
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["winner"] == "adam" and verdict["paired"] and verdict["seeds"] == 5 and verdict["distinguishable"]
    assert (out / "expected_best.png").is_file()  # a sweeper's study: its trials were sampled
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/verdict.json", "comparison/expected_best.png"} <= logged

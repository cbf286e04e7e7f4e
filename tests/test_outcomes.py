"""How a study's outcome is judged, on a real SQLite store and without training: which earlier run a resume
skips to, how pruned and failed jobs are counted, which job is the best, how the parent ends.

The sweeps in tests/test_sweeps.py and tests/test_pruning.py check the same end to end in minutes; these
take seconds, so `make mutants` can afford them (tools/mutants.py).
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from sweeplab.objective import Objective
from sweeplab.sweep.plan import Job
from sweeplab.sweep.report import JobReport
from sweeplab.sweep.summary import counts_and_best, job_row, summary_table
from sweeplab.tracking import tags
from sweeplab.tracking.runs import finished_run
from sweeplab.tracking.studies import Study, final_status


def ended_run(client: MlflowClient, exp_id: str, status: str, labels: dict[str, str], **metrics: float) -> str:
    run_id = client.create_run(exp_id, tags=labels).info.run_id
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    client.set_terminated(run_id, status)
    return run_id


def test_a_resume_skips_to_the_finished_run_of_a_config_only(client: MlflowClient) -> None:
    """A config that FINISHED is not trained again; one that only FAILED or was KILLED is."""
    exp_id = client.create_experiment("resume")
    done = ended_run(client, exp_id, "FINISHED", {tags.CONFIG_HASH: "done"})
    ended_run(client, exp_id, "FAILED", {tags.CONFIG_HASH: "done"})  # a later failed try: still done
    for status in ("FAILED", "KILLED"):
        ended_run(client, exp_id, status, {tags.CONFIG_HASH: "not done"})
    found = finished_run(exp_id, "done")
    assert found is not None and found.info.run_id == done
    assert finished_run(exp_id, "not done") is None
    assert finished_run(exp_id, "never ran") is None


def test_a_sweeps_summary_counts_pruned_and_failed_jobs_and_picks_the_best(client: MlflowClient) -> None:
    """The table a sweep prints and logs: a pruned job is PRUNED (done, not fully trained), a failed one
    fails the parent, the best job is the one with the best objective (highest accuracy, lowest loss)."""
    exp_id = client.create_experiment("outcomes")
    parent = client.create_run(exp_id).info.run_id
    study = Study(client, exp_id, parent, "key", "grid", "outcomes")
    child = {tags.PARENT: parent}
    runs = {
        "0.0001": ended_run(client, exp_id, "FINISHED", {**child, tags.PRUNED: "2", tags.PRUNED_REASON: "below"},
                            val_accuracy=0.3, val_loss=2.0, test_accuracy=0.3, test_loss=2.1),
        "0.1": ended_run(client, exp_id, "FINISHED", child, val_accuracy=0.8, val_loss=0.5, test_accuracy=0.79,
                         test_loss=0.55),
        "0.05": ended_run(client, exp_id, "FINISHED", child, val_accuracy=0.7, val_loss=0.4, test_accuracy=0.7,
                          test_loss=0.45),
        "9.0": ended_run(client, exp_id, "FAILED", {**child, tags.ERROR: "diverged"}),
    }  # fmt: skip

    def summary(objective: Objective):
        rows = [
            job_row(study, ["lr"], Job(num, [f"lr={lr}"], ""), JobReport(num, [f"lr={lr}"], run_id=run_id), objective)
            for num, (lr, run_id) in enumerate(runs.items())
        ]
        table = summary_table(rows, ["lr"], objective)
        return table, *counts_and_best(table, ["lr"], objective)

    table, metrics, labels = summary(Objective("val_accuracy", maximize=True))
    assert list(zip(table["lr"], table["status"], strict=True)) == [
        ("0.1", "FINISHED"), ("0.05", "FINISHED"), ("0.0001", "PRUNED"), ("9.0", "FAILED")]  # fmt: skip
    assert metrics["jobs_total"] == 4 and metrics["jobs_finished"] == 3
    assert metrics["jobs_pruned"] == 1 and metrics["jobs_failed"] == 1
    assert labels[tags.BEST_RUN] == runs["0.1"] and metrics["best_val_accuracy"] == 0.8
    assert metrics["best_test_accuracy"] == 0.79 and labels[tags.ERROR] == "job 4 FAILED: diverged"

    table, metrics, labels = summary(Objective("val_loss", maximize=False))
    assert list(table["lr"])[:2] == ["0.05", "0.1"] and labels[tags.BEST_RUN] == runs["0.05"]
    assert metrics["best_val_loss"] == 0.4 and metrics["best_test_loss"] == 0.45


def test_a_study_with_a_failed_job_ends_failed() -> None:
    """FINISHED only when every job is done (finished, skipped or pruned); KILLED when stopped with jobs left."""
    assert final_status(["FINISHED", "SKIPPED", "PRUNED"], reached_end=True) == "FINISHED"
    assert final_status(["FINISHED", "FAILED", "PRUNED"], reached_end=True) == "FAILED"
    assert final_status(["FINISHED", "KILLED"], reached_end=True) == "FAILED"
    assert final_status(["FINISHED", "FAILED", "NOT RUN"], reached_end=False) == "KILLED"

"""The comparison on real sweeps, small data: a null comparison it must not call distinguishable (sgd against
momentum at 0.0, the same update rule) and a real one it must (sgd against adam after 2 epochs), `seeds=5`
each, read from verdict.json: over the experiment, as the README's commands do, and over the sweep's
parent (its config runs' nested seed runs). Full-size figures are in docs/compare.md."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import LIGHT, run_cli

TINY = ["data.limit=1000", "epochs=2", "training.verbose=0", "tracking.log_model=false", *LIGHT]
SEEDS = "seeds=5"


def sweep_and_compare(folder: Path, overrides: list[str], by_sweep: bool) -> tuple[dict, pd.DataFrame]:
    """sweep.py -m <overrides> seeds=5 in a fresh store, then compare.py --by optimizer over the experiment
    or (`by_sweep`) that sweep's parent."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri}
    swept = run_cli(["-m", *overrides, SEEDS, *TINY, f"hydra.sweep.dir={folder / 'multirun'}"], cwd=folder, env=env)
    assert swept.returncode == 0, swept.stderr[-3000:]
    parent = next(line.split()[3] for line in swept.stdout.splitlines() if line.startswith("sweeplab: parent run "))
    out = folder / "report"
    which = ["--sweep", parent] if by_sweep else []
    compared = run_cli(["--by", "optimizer", *which, "--out", str(out)], cwd=folder, env=env, script="compare.py")
    assert compared.returncode == 0, compared.stderr[-3000:]
    return json.loads((out / "verdict.json").read_text()), pd.read_csv(out / "groups.csv")


@pytest.mark.slow
def test_the_same_update_rule_under_two_names_is_not_distinguishable(tmp_path: Path) -> None:
    verdict, groups = sweep_and_compare(tmp_path, ["optimizer=sgd,momentum", "optimizer.momentum=0.0"], False)
    assert sorted(groups["group"]) == ["momentum", "sgd"] and list(groups["runs"]) == [5, 5]
    assert verdict["distinguishable"] is False and verdict["paired"] is True and verdict["seeds"] == 5
    assert verdict["p_ci_low"] <= 0.5 <= verdict["p_ci_high"]
    assert verdict["diff_ci_low"] <= 0 <= verdict["diff_ci_high"]
    assert "not distinguishable with 5 seeds" in verdict["verdict"]


@pytest.mark.slow
def test_adam_against_sgd_after_two_epochs_is_distinguishable(tmp_path: Path) -> None:
    verdict, groups = sweep_and_compare(tmp_path, ["optimizer=sgd,adam"], True)
    assert verdict["winner"] == "adam" and verdict["runner_up"] == "sgd"
    assert verdict["distinguishable"] is True and verdict["paired"] is True and verdict["seeds"] == 5
    assert verdict["p_improvement"] == 1.0 and verdict["diff_ci_low"] > 0
    by_group = groups.set_index("group")
    assert by_group.loc["adam", "ci_low"] > by_group.loc["sgd", "ci_high"]  # the intervals do not even overlap

"""The Keras callback that applies the stopping rule after every epoch of a study's job or trial."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import keras
from omegaconf import DictConfig

from sweeplab.objective import Objective, objective_of
from sweeplab.perf.process import in_background
from sweeplab.pruning.rule import Decision, Rule, best_so_far, decide
from sweeplab.pruning.siblings import SiblingReader, sibling_bests
from sweeplab.tracking import tags
from sweeplab.tracking.context import StudyContext


def rule_of(pruner: DictConfig, objective: Objective | None = None) -> Rule:
    """The rule of a `pruner` config node (median: the 50th percentile), in the study objective's direction
    when it prunes on that metric."""
    percentile = 50.0 if pruner.kind == "median" else float(pruner.percentile)
    metric = str(pruner.objective)
    direction = objective.on(metric).direction if objective is not None else "auto"
    return Rule(metric, percentile, int(pruner.warmup_epochs), int(pruner.min_runs), direction)


class PruneBySiblings(keras.callbacks.Callback):
    """Stops training when the run's objective so far is worse than its siblings' (sweeplab.pruning.rule).

    Each decision past the warm-up is logged on the run (`pruning_value`, `pruning_threshold`,
    `pruning_siblings` at its epoch) while the next epoch trains; a stopped run gets the tags
    `sweeplab.pruned` (the last epoch it trained) and `sweeplab.pruned_reason`, and then ends as any run
    does, evaluated, logged, FINISHED.
    """

    def __init__(self, rule: Rule, parent_run_id: str) -> None:
        super().__init__()
        self.rule = rule
        self.parent_run_id = parent_run_id
        self.history: list[float] = []
        self.pruned: Decision | None = None  # the decision that stopped the run, if one did
        self._pending: Future | None = None  # the last decision's logging and, on a server, the next read

    def on_train_begin(self, logs: dict | None = None) -> None:
        import mlflow

        run = mlflow.active_run()
        self.run_id = run.info.run_id
        self.client = mlflow.MlflowClient()
        self.siblings = SiblingReader(
            self.client, self.parent_run_id, run.info.experiment_id, self.run_id, self.rule.objective
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.rule.objective)
        if value is None:
            return
        self.history.append(float(value))
        done = epoch + 1
        if done < self.rule.warmup_epochs:
            return
        # On a tracking server the siblings are read while the next epoch trains (what they had logged by
        # the end of this one); on a database store, at once.
        read = self._wait()
        if done > self.rule.warmup_epochs:
            points = read if read is not None else self.siblings.points(done)
            decision = decide(
                self.rule,
                done,
                best_so_far(self.history, self.rule.maximize),
                sibling_bests(points, done, self.rule.maximize),
            )
            if decision.prune:
                self._stop(decision)
            self._pending = in_background(
                "pruning", self._log_and_read, decision, epoch, None if decision.prune else done + 1
            )
        elif self.siblings.prefetches:
            self._pending = in_background("pruning", self.siblings.points, done + 1)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._wait()

    def _log_and_read(self, decision: Decision, step: int, next_epoch: int | None) -> Any:
        metrics = {"pruning_value": decision.value, "pruning_siblings": float(decision.siblings)}
        if decision.threshold is not None:
            metrics["pruning_threshold"] = decision.threshold
        self.client.log_batch(self.run_id, metrics=_metrics(metrics, step))
        return self.siblings.points(next_epoch) if next_epoch and self.siblings.prefetches else None

    def _wait(self) -> Any:
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else None

    def _stop(self, decision: Decision) -> None:
        self.pruned, reason = decision, decision.reason(self.rule)
        self.client.set_tag(self.run_id, tags.PRUNED, str(decision.epoch))
        self.client.set_tag(self.run_id, tags.PRUNED_REASON, reason)
        print(f"sweeplab: pruned after epoch {decision.epoch}: {reason}", flush=True)
        self.model.stop_training = True


def _metrics(values: dict[str, float], step: int) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, value, now, step) for key, value in values.items()]


def pruning_callbacks(cfg: DictConfig, study: StudyContext) -> list[keras.callbacks.Callback]:
    """The pruner of `cfg` for a run inside `study`, or nothing (no pruner, or no study to compare with)."""
    if cfg.get("pruner") is None or study.parent_run_id is None:
        return []
    return [PruneBySiblings(rule_of(cfg.pruner, objective_of(cfg)), study.parent_run_id)]

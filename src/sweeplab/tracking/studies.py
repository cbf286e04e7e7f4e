"""A study's MLflow parent run, its whole life: created or reopened, handed to jobs, counted, summarised, closed.

A study is what a user launches: a grid multirun, a run of any other Hydra sweeper, a Keras Tuner search.
Its parent run is found again by its key (the same command resumes the same study), its id reaches the jobs
as a StudyContext (sweeplab.tracking.context: a value in this process, the environment in others), and it
ends FINISHED, FAILED or KILLED with the reason, never RUNNING while its process can still say so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.errors import StudyError, TrackingLost, one_line
from sweeplab.tracking import tags
from sweeplab.tracking.context import StudyContext
from sweeplab.tracking.store import experiment_id

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
SKIPPED = "SKIPPED"  # a job whose config FINISHED earlier: counted as done, not trained again
PRUNED = "PRUNED"  # a job stopped early by the pruner: FINISHED in MLflow, done
NOT_RUN = "NOT RUN"  # a planned job that never started
DONE = (FINISHED, SKIPPED, PRUNED)
STALE_REASON = "its study stopped while it ran (tracking server lost or process killed); the resumed study reruns it"


@dataclass
class Study:
    """An open study: its parent run in `experiment_id`, reached through `client`."""

    client: MlflowClient
    experiment_id: str
    run_id: str
    key: str
    kind: str
    name: str
    resumed: bool = False
    previous_status: str | None = None  # how the reopened parent had ended (FINISHED: nothing was left)
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    # -- the jobs' side ---------------------------------------------------------------------------------

    @property
    def context(self) -> StudyContext:
        """What a run needs to join this study (it becomes the parent's child): pass it to the run."""
        return StudyContext(parent_run_id=self.run_id)

    # -- what ran ---------------------------------------------------------------------------------------

    def children(self, query: str = "", since_start: bool = False) -> list[Run]:
        """The parent's child runs, newest first (`query`: more of MLflow's filter, ANDed)."""
        parts = [f"tags.`{tags.PARENT}` = '{self.run_id}'"]
        if query:
            parts.append(query)
        if since_start:
            parts.append(f"attributes.start_time >= {self.started_ms}")
        return self.client.search_runs(
            [self.experiment_id], " and ".join(parts), order_by=["attributes.start_time DESC"], max_results=50_000
        )

    def end_child(self, run_id: str, status: str, reason: str) -> None:
        """End a child run whose own process could not (killed, or its server was lost), with the reason;
        and its seeds' runs that were still running with it."""
        with contextlib.suppress(Exception):
            running = f"tags.`{tags.PARENT}` = '{run_id}' and attributes.status = '{RUNNING}'"
            for nested in self.client.search_runs([self.experiment_id], running):
                self.end_child(nested.info.run_id, status, reason)
        with contextlib.suppress(Exception):
            self.client.set_tag(run_id, tags.ERROR, reason[:5000])
            self.client.set_tag(run_id, tags.NOTE, f"{status}: {reason}"[:5000])
        with contextlib.suppress(Exception):
            self.client.set_terminated(run_id, status)

    def close_stale_children(self) -> None:
        """End KILLED the children an earlier attempt left RUNNING (only a lost server or a kill does that)."""
        for run in self.children(f"attributes.status = '{RUNNING}'"):
            self.end_child(run.info.run_id, KILLED, STALE_REASON)

    # -- its record -------------------------------------------------------------------------------------

    def record(
        self,
        metrics: dict[str, float] | None = None,
        labels: dict[str, str] | None = None,
        files: Iterable[Path] = (),
        artifact_path: str | None = None,
    ) -> None:
        """Metrics (step 0: the UI shows the newest, a resumed study keeps the old), tags and files."""
        for key, value in (metrics or {}).items():
            self.client.log_metric(self.run_id, key, float(value))
        for key, value in (labels or {}).items():
            self.client.set_tag(self.run_id, key, str(value)[:5000])
        for path in files:
            self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def finish(self, status: str, reason: str = "") -> None:
        """End the parent run with `status`; a FAILED or KILLED study says why (tag, description)."""
        if status != FINISHED and reason:
            with contextlib.suppress(Exception):
                self.client.set_tag(self.run_id, tags.ERROR, reason[:5000])
                self.client.set_tag(self.run_id, tags.NOTE, f"{status}: {reason}"[:5000])
        self.client.set_terminated(self.run_id, status)

    @contextlib.contextmanager
    def owned(self) -> Iterator[Study]:
        """End the study FINISHED, FAILED or KILLED with the block."""
        try:
            yield self
        except BaseException as exc:
            if not isinstance(exc, TrackingLost):  # a lost server: RUNNING there, the same command reopens it
                with contextlib.suppress(Exception):
                    self.finish(KILLED if isinstance(exc, KeyboardInterrupt) else FAILED, one_line(exc))
            raise
        self.finish(FINISHED)

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        """The parent as MLflow's active run inside the block, for fluent logging (log_artifacts, log_model)."""
        import mlflow

        with mlflow.start_run(run_id=self.run_id) as run:
            yield run


# ---------------------------------------------------------------------------------------- finding studies


def _is_parent(run: Run) -> bool:
    return run.data.tags.get(tags.ROLE, tags.ROLE_STUDY) in (tags.ROLE_STUDY, tags.LEGACY_ROLE_STUDY)


def find_study(client: MlflowClient, exp_id: str, key: str, running_only: bool = False) -> Run | None:
    """The newest parent run of the study `key` (also under the tags of earlier versions), or None."""
    for tag in (tags.STUDY, *tags.LEGACY_STUDY_KEYS):
        query = f"tags.`{tag}` = '{key}'" + (f" and attributes.status = '{RUNNING}'" if running_only else "")
        found = [
            r for r in client.search_runs([exp_id], query, order_by=["attributes.start_time DESC"]) if _is_parent(r)
        ]
        if found:
            return found[0]
    return None


@dataclass(frozen=True)
class StudySpec:
    """What a study is: where and by which key it is found again, and what a new parent run is given."""

    experiment: str
    key: str
    kind: str  # "grid", "sweeper" or "tuner"
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # more tags; tags.RUN_NAME names the parent run
    note: str = ""  # the parent's description in the MLflow UI


def open_study(client: MlflowClient, spec: StudySpec, *, within: StudyContext, resume: bool = True) -> Study:
    """The study `spec`: its earlier parent reopened RUNNING (resume), or a new parent run.

    A new parent is itself a child of the study this process runs `within`, if any (a search as a sweep's job).
    """
    exp_id = experiment_id(client, spec.experiment)
    earlier = find_study(client, exp_id, spec.key) if resume else None
    if earlier is not None:
        return _reopened(client, exp_id, earlier, spec)
    labels = {
        tags.ROLE: tags.ROLE_STUDY,
        tags.STUDY: spec.key,
        tags.STUDY_KIND: spec.kind,
        tags.STUDY_NAME: spec.name,
        **({tags.NOTE: spec.note} if spec.note else {}),
        **spec.labels,
        **({tags.PARENT: within.parent_run_id} if within.parent_run_id else {}),
    }
    run_name = labels.pop(tags.RUN_NAME, None) or f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    try:
        run = client.create_run(exp_id, run_name=run_name, tags=labels)
    except Exception as err:  # noqa: BLE001 (the store: locked or broken database, refused write)
        raise StudyError(f"the study's parent run could not be created in the MLflow store: {one_line(err)}") from err
    study = Study(client, exp_id, run.info.run_id, spec.key, spec.kind, spec.name)
    log_params(client, study.run_id, spec.params)
    return study


def _reopened(client: MlflowClient, exp_id: str, earlier: Run, spec: StudySpec) -> Study:
    """The earlier parent RUNNING again, in today's vocabulary, its children left RUNNING ended KILLED."""
    study = Study(client, exp_id, earlier.info.run_id, spec.key, spec.kind, spec.name, True, earlier.info.status)
    client.update_run(study.run_id, status=RUNNING)
    client.set_tag(study.run_id, tags.ERROR, "")
    client.set_tag(study.run_id, tags.STUDY, spec.key)  # an earlier version's parent joins the vocabulary
    client.set_tag(study.run_id, tags.ROLE, tags.ROLE_STUDY)
    study.close_stale_children()
    return study


def wait_for_study(client: MlflowClient, exp_id: str, key: str, timeout_s: float, hint: str) -> Study:
    """A running study opened by another process (a distributed search's chief), waited for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = find_study(client, exp_id, key, running_only=True)
        if run is not None:
            tags_ = run.data.tags
            return Study(
                client, exp_id, run.info.run_id, key, tags_.get(tags.STUDY_KIND, ""), tags_.get(tags.STUDY_NAME, "")
            )
        time.sleep(1)
    raise StudyError(f"no running study {key} after {timeout_s:.0f} s: {hint}")


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Params in batches (MLflow takes at most 100 per call), values cut to MLflow's 6,000 characters."""
    from mlflow.entities import Param

    items = [Param(key, str(value)[:6000]) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


# ------------------------------------------------------------------------------------------- its outcome


def count_outcomes(statuses: Iterable[str], prefix: str = "jobs") -> dict[str, float]:
    """How the study's jobs ended: total, finished (skipped and pruned included), skipped, pruned, failed,
    killed or not run."""
    statuses = list(statuses)
    return {
        f"{prefix}_total": len(statuses),
        f"{prefix}_finished": sum(s in DONE for s in statuses),
        f"{prefix}_skipped": statuses.count(SKIPPED),
        f"{prefix}_pruned": statuses.count(PRUNED),
        f"{prefix}_failed": statuses.count(FAILED),
        f"{prefix}_killed": statuses.count(KILLED) + statuses.count(NOT_RUN),
    }


def final_status(statuses: Iterable[str], reached_end: bool) -> str:
    """KILLED when interrupted with jobs left, FAILED when a job did not finish, else FINISHED."""
    statuses = set(statuses)
    if not reached_end and statuses & {KILLED, NOT_RUN}:
        return KILLED
    return FAILED if statuses - set(DONE) else FINISHED


def best_labels(run_id: str, label: str) -> dict[str, str]:
    """The parent's tags naming its best child."""
    return {tags.BEST_RUN: run_id, tags.BEST: label}

"""One tracked run: its name, params and tags, and a context that never leaves it RUNNING."""

from __future__ import annotations

import contextlib
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import sweeplab
from sweeplab import compat
from sweeplab.config import config_group, config_hash, hidden_units, is_mlp, learning_rate, model_name, optimizer_name
from sweeplab.errors import ArtifactWriteError, TrackingLost, one_line
from sweeplab.signals import signals_held
from sweeplab.tracking import tags
from sweeplab.tracking.context import StudyContext
from sweeplab.tracking.store import unreachable

if TYPE_CHECKING:
    import mlflow
    from mlflow.entities import Run


def run_name(cfg: DictConfig) -> str:
    """e.g. 'mlp 300-100 relu sgd lr=0.01 seed=42', 'cnn relu adam lr=0.001 seed=42'."""
    model = model_name(cfg)
    if is_mlp(cfg):
        model += " " + "-".join(str(u) for u in hidden_units(cfg))
    activation = cfg.model.get("activation")
    if activation is not None:
        model += f" {activation}"
    return f"{model} {optimizer_name(cfg)} lr={learning_rate(cfg):g} seed={cfg.seed}"


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config (Hydra's own node left out), flattened to dotted keys."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    plain["lr"] = learning_rate(cfg)
    plain["optimizer"]["learning_rate"] = plain["lr"]
    if is_mlp(cfg):
        plain["model"]["hidden_units"] = hidden_units(cfg)
    import pandas as pd

    flat = pd.json_normalize(plain, sep=".").iloc[0].to_dict()
    return {k: ("null" if v is None else v) for k, v in flat.items()}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(sweeplab.__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_tags() -> dict[str, str]:
    """Versions and the git state of the code that ran."""
    import keras

    found = {
        "sweeplab.version": sweeplab.__version__,
        "keras.version": keras.__version__,
        "keras.backend": keras.backend.backend(),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        found["tensorflow.version"] = tf.__version__
    commit = _git("rev-parse", "HEAD")
    if commit:
        found["mlflow.source.git.commit"] = commit
        found["sweeplab.git_commit"] = commit
        found["sweeplab.git_dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no")))
    return found


def _lost(run_id: str) -> TrackingLost:
    import mlflow

    return TrackingLost(
        f"the MLflow tracking server at {mlflow.get_tracking_uri()} stopped answering during run {run_id}, "
        "which stays RUNNING there; rerun the same command once the server is back (a sweep resumes where "
        "it stopped and closes that run)"
    )


def _start(name: str, labels: dict[str, str], study: StudyContext, resume: str | None) -> mlflow.ActiveRun:
    """A new run under the active run (nested) or else the study's parent; or `resume` reopened."""
    import mlflow

    outer, parent = mlflow.active_run(), study.parent_run_id
    if parent:
        labels = {tags.ROLE: tags.ROLE_JOB, **labels, tags.STUDY_RUN: parent}
    if resume is not None:
        run = mlflow.start_run(run_id=resume, nested=outer is not None)
        mlflow.set_tags({**labels, tags.ERROR: "", tags.NOTE: ""})
        return run
    parent = outer.info.run_id if outer is not None else parent
    return mlflow.start_run(run_name=name, tags=labels, parent_run_id=parent, nested=outer is not None)


def _end_stopped(run: mlflow.ActiveRun, exc: BaseException) -> bool:
    """End `run` KILLED (Ctrl-C, SIGTERM) or FAILED with the reason and traceback; False if its server is lost."""
    import mlflow

    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    reason = one_line(exc)
    # A second Ctrl-C or SIGTERM waits until the run is ended (it arrives when the block exits).
    with signals_held():
        if unreachable(mlflow.get_tracking_uri()) is not None:  # each call below would retry: one probe tells
            compat.forget_active_run(run.info.run_id)  # so that the next job in this process starts clean
            return False
        # Record what we can; the store itself may be what failed, and the run must still be ended.
        with contextlib.suppress(Exception):
            mlflow.set_tags({tags.ERROR: reason[:5000], tags.NOTE: f"{status}: {reason}"[:5000]})
            mlflow.log_text(traceback.format_exc(), "error.txt")
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
    return True


def _unwritable(run: mlflow.ActiveRun, exc: OSError) -> ArtifactWriteError:
    target = exc.filename2 or exc.filename  # a copy's destination, not its local source
    where = f": {target}" if target else ""
    return ArtifactWriteError(
        f"run {run.info.run_id} FAILED: cannot write its files to {run.info.artifact_uri} "
        f"({exc.strerror or exc}{where}); free disk space or fix the experiment's artifact location"
    )


@contextlib.contextmanager
def tracked_run(
    name: str, labels: dict[str, str], study: StudyContext, resume: str | None = None
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that ends FINISHED, FAILED (an error) or KILLED (Ctrl-C, SIGTERM), never RUNNING.

    Started inside another tracked run, it is nested under it (a seed's run under its config's run);
    otherwise under `study`'s parent, if any. `resume` reopens an earlier run of the same config instead.
    A failed run keeps what it logged and gets the reason as a tag, as its description in the UI, and
    the traceback as error.txt.
    """
    import mlflow

    run = _start(name, labels, study, resume)
    try:
        yield run
    except BaseException as exc:
        reachable = _end_stopped(run, exc)
        if not reachable and not isinstance(exc, KeyboardInterrupt):
            raise _lost(run.info.run_id) from exc
        if isinstance(exc, OSError):  # inside a run only writing its files raises these (disk full, ...)
            raise _unwritable(run, exc) from exc
        raise
    mlflow.end_run("FINISHED")


def run_tags(cfg: DictConfig) -> dict[str, str]:
    """What every run of `cfg` is tagged with: versions, git state, config identity (with and without the
    seed), dataset."""
    return {
        **source_tags(),
        tags.CONFIG_HASH: config_hash(cfg),
        tags.CONFIG_GROUP: config_group(cfg),
        tags.DATASET: cfg.data.name,
    }


def finished_run(experiment_id: str, identity: str) -> Run | None:
    """The newest FINISHED run of the experiment with this config hash, if any."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient().search_runs(
        [experiment_id],
        f"tags.`{tags.CONFIG_HASH}` = '{identity}' and attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return found[0] if found else None

"""The study a run belongs to, as one value: read from the environment once where a job starts, passed down.

Between processes (joblib workers, submitit and Slurm jobs) the study travels as environment variables, set by
sweeplab.sweep.plan.pass_to_jobs through hydra.job.env_set; inside a process it is this frozen value, passed as
an argument. Only this module knows the variables' names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

_PARENT = "SWEEPLAB_PARENT_RUN_ID"  # a study's parent run id, handed to its jobs in any process
_SIZE = "SWEEPLAB_STUDY_SIZE"  # jobs the study will run, when known ("job i/N")
_AXES = "SWEEPLAB_STUDY_AXES"  # the swept keys, comma-separated, to label a job by what varies
_STARTED = "SWEEPLAB_STUDY_STARTED"  # when the study started (time.time()), for its jobs' time left


@dataclass(frozen=True)
class StudyContext:
    """Which study's parent run a run joins (None: a run on its own), and what its jobs show of the study."""

    parent_run_id: str | None = None
    size: int | None = None  # jobs the study will run, when known
    axes: tuple[str, ...] = ()  # the swept keys
    started: float | None = None  # time.time() when the study started

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StudyContext:
        """The study handed to this process (os.environ by default); empty outside a study."""
        env = os.environ if environ is None else environ
        size, started = env.get(_SIZE), env.get(_STARTED)
        return cls(
            parent_run_id=env.get(_PARENT) or None,
            size=int(size) if size else None,
            axes=tuple(a for a in env.get(_AXES, "").split(",") if a),
            started=float(started) if started else None,
        )

    def environ(self) -> dict[str, str]:
        """This value as the environment variables a job's process reads back with `from_environ`."""
        return {
            _PARENT: self.parent_run_id or "",
            _SIZE: str(self.size or ""),
            _AXES: ",".join(self.axes),
            _STARTED: "" if self.started is None else repr(self.started),
        }


NO_STUDY = StudyContext()  # a run on its own: no parent, no study tags, no pruning

"""A job's report: what it did, written as sweeplab_job.json into its Hydra output folder by whatever process or
machine ran it, read back by the launching process for the study's summary (sweeplab.sweep.summary)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sweeplab.errors import one_line

REPORT_FILE = "sweeplab_job.json"


@dataclass
class JobReport:
    """One job: its number and overrides, the run it made or reused, and how it ended if its run cannot say."""

    num: int
    overrides: list[str] = field(default_factory=list)
    parent_run_id: str | None = None  # the study it ran in
    config_hash: str | None = None
    skipped: bool = False  # its config FINISHED earlier: run_id is that run
    run_id: str | None = None
    status: str | None = None  # how the job ended when it ended before its run could say so
    error: str | None = None
    warm_worker: bool = False  # a joblib worker warmed up while the sweep started
    reused_compiled: bool = False  # took the compiled model of the previous job in this worker

    def failed(self, exc: BaseException) -> None:
        """Ctrl-C or SIGTERM (signals.Terminated) kills the job; anything else fails it."""
        self.status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        self.error = one_line(exc)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REPORT_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> JobReport:
        """The report at `path` (OSError, ValueError, KeyError or TypeError for one unreadable or not ours)."""
        found = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in found.items() if key in known})


def job_reports(directory: Path, parent_run_id: str) -> dict[int, JobReport]:
    """The reports of the study `parent_run_id`'s jobs under its sweep folder, by job number."""
    reports: dict[int, JobReport] = {}
    for path in directory.rglob(REPORT_FILE):
        try:
            report = JobReport.read(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if report.parent_run_id == parent_run_id:
            reports[int(report.num)] = report
    return reports

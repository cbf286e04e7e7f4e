"""sweeplab's Hydra launchers: hydra-submitit-launcher's Slurm and local launchers, with every job watched.

Hydra accepts launcher plugins only from the `hydra_plugins` package and imports each at start-up, so this
module stays light: the work is in sweeplab.sweep.cluster, imported when a sweep launches. A refused
submission or a job stuck pending fails the sweep in one line; Ctrl-C or SIGTERM cancels the jobs and waits
for them to end. Chosen by name: `hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml) and `hydra/launcher=local`
(local.yaml); the plugin's own `submitit_slurm` and `submitit_local` are refused (sweeplab.sweep.launchers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher as submitit


class _Watched:
    """What both launchers add to the plugin's: watched launches, and jobs that turn SIGTERM into KILLED."""

    cluster = "local"

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from sweeplab.sweep.cluster import launch

        return launch(self, self.cluster, job_overrides, initial_job_idx)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # In the job's process: submitit ignores SIGTERM there (a preemption warning); a cancelled job must
        # end its run KILLED from its first line on.
        from sweeplab.signals import handle_signals

        handle_signals()
        return super().__call__(*args, **kwargs)  # type: ignore[misc]


class SlurmLauncher(_Watched, submitit.SlurmLauncher):
    """`hydra/launcher=slurm`: the sweep as a Slurm job array, watched until every task has ended."""

    cluster = "slurm"


class LocalLauncher(_Watched, submitit.LocalLauncher):
    """`hydra/launcher=local`: each job a local process through submitit, watched the same way."""

    cluster = "local"

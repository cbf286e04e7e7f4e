"""`hydra/sweeper=sweeplab`: sweeplab's asynchronous Optuna sweeper, a worker refilled the moment its trial ends.

Hydra imports every plugin under `hydra_plugins` at start-up, so this module stays light (no Optuna): it holds
the sweeper's schema and hands the study to sweeplab.study.loop when a multirun starts.
"""

# No `from __future__ import annotations`: Hydra loads plugins outside sys.modules, where a dataclass cannot
# resolve string annotations.
from dataclasses import dataclass
from typing import Any, Dict, Optional  # noqa: UP035 - OmegaConf reads these annotations

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class SweeplabSweeperConf:
    """hydra.sweeper.*: the study's budget, width, sampler and search space (Hydra's Optuna override syntax)."""

    _target_: str = "hydra_plugins.sweeplab_sweeper.SweeplabSweeper"
    n_trials: int = 20  # trials in the study, those resumed from MLflow included
    workers: int = 1  # trials in flight at once (the basic launcher runs one)
    sampler: str = "tpe"  # tpe, random, gp (needs torch), grid (choices only) or nsga2
    seed: Optional[int] = None  # noqa: UP045 - the sampler's seed: the same seed asks the same first trials
    # key -> 'interval(0.001,0.3)', 'choice(a,b)', 'range(1,4)' or 'a,b'; the command line's overrides win
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(group="hydra/sweeper", name="sweeplab", node=SweeplabSweeperConf, provider="sweeplab")


class SweeplabSweeper(Sweeper):
    """Asks Optuna for a trial per free worker and launches it alone, so no worker waits for a batch."""

    def __init__(self, n_trials: int, workers: int, sampler: str, seed: int | None, params: Any) -> None:
        self.settings = {"n_trials": n_trials, "workers": workers, "sampler": sampler, "seed": seed}
        self.config: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from sweeplab.study.loop import run_study

        return run_study(self.config, self.launcher, self.settings)

"""`hydra.sweeper.sampler`: the Optuna sampler a study asks, seeded by `hydra.sweeper.seed`."""

from __future__ import annotations

from typing import Any


def make_sampler(settings: dict[str, Any], space: dict[str, Any], resumed: int = 0) -> Any:
    """The sampler named by settings["sampler"] (checked already by sweeplab.study.space.check_sampler).

    A study resumed after `resumed` trials seeds it with seed + resumed: the seed's first draws were those
    trials, and drawing them again would only skip them.
    """
    import optuna

    name, seed = settings["sampler"], settings["seed"]
    seed = None if seed is None else int(seed) + resumed
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "grid":
        return _grid_sampler()({key: list(d.choices) for key, d in space.items()}, seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _grid_sampler() -> type:
    """Optuna's GridSampler without its stop: Study.stop works only inside Study.optimize, and sweeplab asks and
    tells itself (sweeplab.study.trials asks no more once the grid is used up: GridSampler.is_exhausted)."""
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler

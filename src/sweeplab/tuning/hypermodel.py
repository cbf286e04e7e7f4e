"""The configured model as a Keras Tuner HyperModel: sample every hyperparameter at the top, then build as a
run does.

Each trial becomes an ordinary sweeplab config (`trial_config`), compiled by `train.compile_model`, so a
trial trains exactly like `python sweep.py` with the same values and logs the same params. The defaults
of every hyperparameter are the baseline's values: `build(keras_tuner.HyperParameters())` is the baseline.
The model's own keys (`tuner.space.model`) are named `model.<key>`; the MLP's sizes `depth`, `units_<i>`.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeplab.config import model_name
from sweeplab.data import Dataset
from sweeplab.tracking.context import NO_STUDY, StudyContext
from sweeplab.tuning.space import Choices, Range, SearchSpace, Span, optimizer_config

# Hyperband's bookkeeping values in a trial's hyperparameters.
HYPERBAND_EPOCHS = "tuner/epochs"


def _int(hp: keras_tuner.HyperParameters, name: str, r: Range, log: bool = False) -> int:
    if r.fixed:
        return hp.Fixed(name, int(r.low))
    return hp.Int(name, int(r.low), int(r.high), sampling="log" if log else "linear", default=int(r.default))


def _choice(hp: keras_tuner.HyperParameters, name: str, values: tuple[Any, ...], default: Any) -> Any:
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    if isinstance(default, bool):  # hp.Choice would turn booleans into 0 and 1
        return hp.Boolean(name, default=default)
    return hp.Choice(name, list(values), default=default)


def _model_key(hp: keras_tuner.HyperParameters, key: str, dim: Span | Choices) -> Any:
    """A model key's value, named `model.<key>`; its default is the baseline's value."""
    name = f"model.{key}"
    if isinstance(dim, Choices):
        return _choice(hp, name, dim.values, dim.default)
    if dim.fixed:
        return hp.Fixed(name, dim.low)
    kind = hp.Int if dim.integer else hp.Float
    return kind(name, dim.low, dim.high, step=dim.step, sampling="log" if dim.log else "linear", default=dim.default)


def sample(hp: keras_tuner.HyperParameters, space: SearchSpace) -> dict[str, Any]:
    """Every hyperparameter of a trial, drawn (or read back) from `hp`: the model's keys, then the MLP's
    sizes (the MLP only), activation, optimizer and learning rate.

    Layer widths beyond the smallest depth live in conditional scopes, so a trial only holds the widths
    of the layers it has (Keras Tuner then neither tunes nor logs the others).
    """
    model = {key: _model_key(hp, key, dim) for key, dim in space.model.items()}
    units = _units(hp, space) if space.depth is not None else None
    lr = space.learning_rate
    activation = space.activation
    return {
        "model": model,
        "units": units,
        "activation": None if activation is None else _choice(hp, "activation", activation.values, activation.default),
        "optimizer": _choice(hp, "optimizer", space.optimizer.values, space.optimizer.default),
        "learning_rate": hp.Fixed("learning_rate", lr.low)
        if lr.fixed
        else hp.Float("learning_rate", lr.low, lr.high, sampling="log", default=lr.default),
    }


def _units(hp: keras_tuner.HyperParameters, space: SearchSpace) -> list[int]:
    """The MLP's hidden sizes: its depth, then one width per layer it has."""
    assert space.depth is not None
    depth = _int(hp, "depth", space.depth)
    units: list[int] = []
    for i, r in enumerate(space.units):
        if i < space.depth.low:
            units.append(_int(hp, f"units_{i + 1}", r, log=True))
            continue
        with hp.conditional_scope("depth", list(range(i + 1, space.depth.high + 1))):
            width = _int(hp, f"units_{i + 1}", r, log=True)
        if i < depth:
            units.append(width)
    return units


class ConfiguredHyperModel(keras_tuner.HyperModel):
    """Builds and compiles the trial's model (any builder) for `data`, around the baseline `cfg`.

    With several executions per trial, execution i trains from seed `seed + i`, in a run of its own nested
    under the trial's run (role seed), as `seeds=N` does for a sweep's job; `executed` keeps their results.
    """

    def __init__(self, cfg: DictConfig, space: SearchSpace, data: Dataset) -> None:
        super().__init__(name=model_name(cfg))
        self.cfg = cfg
        self.space = space
        self.data = data
        self.executions = 1
        self.trial_cfg: DictConfig | None = None
        self.executed: list[dict[str, float]] = []
        self.study = NO_STUDY  # the search's study, given with each trial

    def start_trial(self, cfg: DictConfig, executions: int, study: StudyContext) -> None:
        """A trial begins: its config, how many executions it trains, and the study its runs join."""
        self.trial_cfg, self.executions, self.executed, self.study = cfg, executions, [], study

    def build(self, hp: keras_tuner.HyperParameters) -> Any:
        from sweeplab.train import compile_model

        if self.executions > 1 and self.trial_cfg is not None:
            from sweeplab.backend import fresh_start

            fresh_start(self.trial_cfg.seed + len(self.executed))  # the fresh weights come from this seed
        return compile_model(self.trial_config(sample(hp, self.space), hp), self.data)

    def fit(self, hp: keras_tuner.HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras Tuner's fit, inside a nested run per execution when a trial has several."""
        from sweeplab.perf.fused_steps import fit_batch_size, fused_steps_of

        kwargs["batch_size"] = fit_batch_size(self.cfg.batch_size, fused_steps_of(model))  # as its step takes it
        if self.executions <= 1 or self.trial_cfg is None:
            return model.fit(*args, **kwargs)
        import mlflow

        from sweeplab.config import seed_config
        from sweeplab.seeds.aggregate import aggregated
        from sweeplab.tracking import tags
        from sweeplab.tracking.runs import flat_params, run_name, run_tags, tracked_run

        number = len(self.executed) + 1
        one = seed_config(self.trial_cfg, self.trial_cfg.seed + number - 1)
        execution_tags = {**run_tags(one), tags.ROLE: tags.ROLE_SEED}
        with tracked_run(f"execution {number}/{self.executions}: {run_name(one)}", execution_tags, self.study):
            mlflow.log_params({**flat_params(one), "execution": number})
            history = model.fit(*args, **kwargs)
        self.executed.append(aggregated({k: float(v[-1]) for k, v in history.history.items() if v}))
        return history

    def trial_config(self, values: dict[str, Any], hp: keras_tuner.HyperParameters | None = None) -> DictConfig:
        """The sweeplab config a trial trains with: the baseline with the trial's values put in."""
        cfg = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=True))
        OmegaConf.set_struct(cfg, True)
        epochs = hp.values.get(HYPERBAND_EPOCHS) if hp is not None else None
        with open_dict(cfg):
            for key, value in values["model"].items():  # as `python sweep.py model.KEY=VALUE`
                cfg.model[key] = value
            if values["units"] is not None:  # the MLP
                cfg.model.units = list(values["units"])
                cfg.depth = cfg.model.depth = len(values["units"])
            if values["activation"] is not None:  # as `python sweep.py activation=...`
                cfg.activation = cfg.model.activation = values["activation"]
            cfg.optimizer = optimizer_config(self.cfg, values["optimizer"])
            cfg.lr = float(values["learning_rate"])
            cfg.epochs = int(epochs or self.cfg.tuner.max_epochs)
            cfg.tuner = None
        return cfg

    def config_of(self, hp: keras_tuner.HyperParameters) -> DictConfig:
        """The trial config of a trial's hyperparameters (read back, nothing new is registered)."""
        return self.trial_config(sample(hp.copy(), self.space), hp)

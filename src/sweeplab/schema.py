"""The config's typed schema, registered with Hydra: a wrong type or a choice not in its enum fails at composition.

Hydra checks every value against these dataclasses before any work (`lr=fast`, `backend=tensorflw`,
`training.verbose=loud`, `tuner.kind=randon`); sweeplab.validate checks what a type cannot say (ranges,
files, metrics). Choices are `StrEnum`s named as the YAML spells them, so they print, compare and log as
the same strings as before. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class Backend(StrEnum):
    """The Keras backend a run trains with (`backend=`)."""

    tensorflow = "tensorflow"
    jax = "jax"


class _ByText(StrEnum):
    """A choice whose names are not identifiers: Hydra passes `0` as an int, looked up here by its text."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        return cls.__members__.get(str(value))


# Keras progress (`training.verbose`): auto (a bar in a terminal, a line per epoch otherwise), 0, 1, 2.
Verbosity = _ByText("Verbosity", {"auto": "auto", "0": "0", "1": "1", "2": "2"}, module=__name__)


class TunerKind(StrEnum):
    """The Keras Tuner search (`tuner=` chooses conf/tuner/<kind>.yaml, which sets `tuner.kind`)."""

    random = "random"
    hyperband = "hyperband"
    bayesian = "bayesian"


class PrunerKind(StrEnum):
    """The stopping rule (`pruner=` chooses conf/pruner/<kind>.yaml, which sets `pruner.kind`)."""

    median = "median"
    percentile = "percentile"


@dataclass
class TrainingConfig:
    jit_compile: Any = "auto"  # auto, true or false (sweeplab.perf.xla)
    fused_steps: int = 32
    steps_per_execution: int = 32
    reuse_compiled: bool = True
    threads: int | None = None
    verbose: Verbosity = Verbosity["auto"]
    predict_samples: int = 3


@dataclass
class TrackingConfig:
    uri: str | None = None
    experiment: str = "fashion_mnist"
    log_model: bool = True
    retries: int = 2
    timeout: float = 10.0


@dataclass
class ObjectiveConfig:
    metric: str = "val_accuracy"
    direction: str = "auto"


# The tuner's and the pruner's keys are typed here; their values (and comments) live in conf/tuner/*.yaml
# and conf/pruner/*.yaml. Each tuner kind has exactly its file's keys: the search's project name hashes them.
@dataclass
class TunerConfig:
    kind: TunerKind = MISSING
    space: Any = MISSING  # conf/tuner/space/: checked by sweeplab.tuning.space
    max_trials: int | None = MISSING
    max_epochs: int = MISSING
    executions_per_trial: int = MISSING
    objective: str = MISSING
    patience: int | None = MISSING
    max_consecutive_failed_trials: int = MISSING
    directory: str = MISSING
    registered_model: str | None = MISSING


@dataclass
class HyperbandConfig(TunerConfig):
    factor: int = MISSING
    hyperband_iterations: int = MISSING


@dataclass
class BayesianConfig(TunerConfig):
    num_initial_points: int | None = MISSING


@dataclass
class PrunerConfig:
    kind: PrunerKind = MISSING
    objective: str = MISSING
    warmup_epochs: int = MISSING
    min_runs: int = MISSING
    percentile: Any = MISSING  # a number from 0 to 100, logged as written (50 stays 50)


@dataclass
class SweeplabConfig:
    # data and model are the user's: any keys, set by conf/data/*.yaml and conf/model/*.yaml.
    data: Any = None
    model: Any = None
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optimizer: Any = None
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tuner: Any = None  # typed by its option's schema (conf/tuner/*.yaml start with one)
    pruner: Any = None  # typed likewise (conf/pruner/median.yaml)
    sweeps: Any = None
    backend: Backend = Backend.tensorflow
    lr: float | None = None
    activation: str = "relu"
    depth: int = 2
    width: int = 300
    epochs: int = 30
    batch_size: int = 32
    seed: int = 42
    seeds: int = 1
    force: bool = False


# Schemas of group options, stored outside any group (a group's options are what users choose, and what
# --help lists): each conf/tuner/*.yaml names its own first (`/tuner_random_schema@_here_`), conf/pruner/median.yaml
# the pruner's.
OPTION_SCHEMAS = {
    "tuner_random_schema": TunerConfig,
    "tuner_hyperband_schema": HyperbandConfig,
    "tuner_bayesian_schema": BayesianConfig,
    "pruner_schema": PrunerConfig,
}


def _stem(path: Any) -> str:
    """`${stem:${data.path}}`: a file's name without its folder and suffix ('csv' while no file is given)."""
    return Path(str(path)).stem if path else "csv"


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (before composing) and the `stem` resolver."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=SweeplabConfig)
    for name, node in OPTION_SCHEMAS.items():
        store.store(name=name, node=node)
    OmegaConf.register_new_resolver("stem", _stem, replace=True)

"""What a config derives (layer sizes, learning rate, the optimizer's name) and a run's identity (its hash).

The typed schema Hydra checks at composition is sweeplab.schema (`register_configs` is named here too, for the
entry points); values are checked by sweeplab.validate. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.schema import register_configs as register_configs  # the entry points' one import

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # Hydra's config folder, mirroring this package
OPTIMIZER_CONF_DIR = CONF_DIR / "optimizer"  # one file per optimizer a config or a search can choose

# keras.activations' public functions (checked against Keras by tests/test_config.py), listed here so
# that a typo is refused without importing TensorFlow. `threshold` is left out: it needs arguments.
KERAS_ACTIVATIONS = (
    "celu elu exponential gelu glu hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh leaky_relu "
    "linear log_sigmoid log_softmax mish relu relu6 selu sigmoid silu soft_shrink softmax softplus "
    "softsign sparse_plus sparse_sigmoid sparsemax squareplus swish tanh tanh_shrink"
).split()

# Training images each built-in dataset ships (Keras layout), to refuse a too-large data.limit early.
DATASET_TRAIN_SIZES = {"fashion_mnist": 60_000, "mnist": 60_000}
TASKS = ("classification", "regression")


# The MLP builder, the default model: its configs' identity is written as before models had a `_target_`.
MLP_TARGET = "sweeplab.model.build_mlp"
# Root keys that are short names of the MLP's own keys (`depth=3` is `model.depth=3`).
MODEL_SHORTCUTS = ("activation", "depth", "width")
# Data keys sweeplab reads itself; every other key of a data config with a `_target_` goes to the loader.
DATA_KEYS = ("_target_", "name", "limit", "validation_size", "class_names", "task", "scale")
# Keys added after stores were written, left out of a config's identity at these values so that the same
# command keeps its hash.
_IDENTITY_DEFAULTS = {"data": {"task": "classification", "scale": "auto"}}


def mlp_units(depth: int, width: int, taper: float, units: list[int] | None = None) -> list[int]:
    """The MLP's hidden layer sizes: `units` if given, else width tapered by `taper` over depth layers."""
    if units is not None:
        return [int(u) for u in units]
    return [max(1, round(width / taper**i)) for i in range(depth)]


def is_mlp(cfg: DictConfig) -> bool:
    """Whether the configured model is sweeplab's MLP (its hidden sizes, run names and tuner space)."""
    return cfg.model.get("_target_") == MLP_TARGET


def hidden_units(cfg: DictConfig) -> list[int]:
    """The MLP's hidden layer sizes (model.units, else model.width tapered over model.depth layers)."""
    model = cfg.model
    return mlp_units(model.depth, model.width, model.taper, model.get("units"))


def model_name(cfg: DictConfig) -> str:
    """The builder's short name: `build_cnn` -> 'cnn', `mypkg.nets.small_net` -> 'small_net'."""
    return str(cfg.model.get("_target_", "model")).rsplit(".", 1)[-1].removeprefix("build_")


def learning_rate(cfg: DictConfig) -> float:
    """The learning rate a run uses: the root `lr` if set, else the optimizer's usual one."""
    return float(cfg.lr if cfg.lr is not None else cfg.optimizer.learning_rate)


def optimizer_name(cfg: DictConfig) -> str:
    return str(cfg.optimizer.name)


def optimizer_names() -> list[str]:
    """The optimizers sweeplab ships: the names of conf/optimizer/*.yaml."""
    return sorted(p.stem for p in OPTIMIZER_CONF_DIR.glob("*.yaml"))


# Keys that change how or where a run is recorded, not what it computes.
# The objective decides what a study compares, not what a run computes.
_NOT_IDENTITY = ("tracking", "force", "sweeps", "tuner", "pruner", "objective", "hydra")
# fused_steps and reuse_compiled give the same updates (tests/test_steps.py, tests/test_compiled.py): runs with
# and without them are the same job.
_NOT_IDENTITY_TRAINING = ("threads", "verbose", "fused_steps", "reuse_compiled")


def identity(cfg: DictConfig) -> dict[str, Any]:
    """The part of the resolved config that determines a run's result (`seeds` only past 1, so that the
    hashes of stores written before it existed stay the same)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    if plain.get("seeds", 1) == 1:
        plain.pop("seeds", None)
    for key in _NOT_IDENTITY:
        plain.pop(key, None)
    for key in _NOT_IDENTITY_TRAINING:
        plain.get("training", {}).pop(key, None)
    for section, defaults in _IDENTITY_DEFAULTS.items():
        for key, value in defaults.items():
            if plain[section].get(key, value) == value:
                plain[section].pop(key, None)
    plain["lr"] = learning_rate(cfg)
    plain["optimizer"]["learning_rate"] = plain["lr"]
    _model_identity(cfg, plain)
    return plain


def _model_identity(cfg: DictConfig, plain: dict[str, Any]) -> None:
    """The model's keys as stores have them: a root shortcut counts at the root (whether set as `depth=3` or
    `model.depth=3`) and only where the model has that key; the MLP without its `_target_`, by its sizes."""
    model = plain["model"]
    for key in MODEL_SHORTCUTS:
        if key in model:
            plain[key] = model.pop(key)
        else:
            plain.pop(key, None)
    if model.get("_target_") == MLP_TARGET:
        plain["model"] = {"units": hidden_units(cfg), "taper": float(model["taper"])}
        if str(plain["training"].get("jit_compile")).lower() == "auto":  # auto is XLA for the MLP
            plain["training"]["jit_compile"] = True


def config_hash(cfg: DictConfig) -> str:
    """A stable hash of `identity(cfg)`: the same job gets the same hash, whatever its folder or time."""
    return _hash(identity(cfg))


def config_group(cfg: DictConfig) -> str:
    """The identity without the seed: runs of one config that differ only by seed share it."""
    plain = identity(cfg)
    plain.pop("seed", None)
    plain.pop("seeds", None)
    return _hash(plain)


def _hash(plain: dict[str, Any]) -> str:
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seed_list(cfg: DictConfig) -> list[int]:
    """The seeds a config trains with: seed, seed+1, ... (`seeds` of them)."""
    return [int(cfg.seed) + i for i in range(int(cfg.get("seeds") or 1))]


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """One seed's config of a seeds=N config: the same values with `seed` and seeds=1, as `seed=...` gives."""
    one = copy.deepcopy(cfg)  # DictConfig.copy shares the nodes it would set
    one.seed = seed
    one.seeds = 1
    return one

"""Every config composes; the baseline's shape; the checks that refuse bad values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from sweeplab.config import KERAS_ACTIVATIONS, config_hash, hidden_units, learning_rate
from sweeplab.errors import ConfigError
from sweeplab.validate import validate

CONF = Path(__file__).resolve().parents[1] / "conf"
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))

# sweeplab.config_hash of these commands as the code before models had a `_target_` computed them (3a82919):
# existing stores resume and compare only while they stay the same.
HASHES_BEFORE_MODELS = {
    (): "b89eac02d8aaa47f",
    ("depth=3",): "fbcb4c0dbe62be7f",
    ("model.units=[10,5]",): "e55a8550619bdf6d",
    ("lr=0.1", "optimizer=adam"): "81f16ccf9039ef01",
    ("data=mnist",): "54dcfa3c56460e12",
    ("seeds=3",): "e2963c8f707f486a",
    ("activation=elu", "width=100", "data.limit=2000"): "61f814e626dfa123",
}


@pytest.mark.parametrize("overrides", list(HASHES_BEFORE_MODELS))
def test_the_mlp_keeps_its_config_hash(compose_cfg, overrides) -> None:
    assert config_hash(compose_cfg(*overrides)) == HASHES_BEFORE_MODELS[overrides]


def test_a_shortcut_and_the_model_key_are_one_identity(compose_cfg) -> None:
    assert config_hash(compose_cfg("depth=3")) == config_hash(compose_cfg("model.depth=3"))
    # The CNN has no depth: the MLP's knob does not split its runs; its own keys do.
    assert config_hash(compose_cfg("model=cnn", "depth=3")) == config_hash(compose_cfg("model=cnn"))
    assert config_hash(compose_cfg("model=cnn", "model.dropout=0.5")) != config_hash(compose_cfg("model=cnn"))
    # The objective decides what a study compares, not what a run computes.
    assert config_hash(compose_cfg("objective.metric=val_loss")) == config_hash(compose_cfg())


def test_csv_needs_its_file_and_target(compose_cfg) -> None:
    with pytest.raises(ConfigError, match="data=csv needs data.path=FILE.csv and data.target=COLUMN"):
        validate(compose_cfg("data=csv"))
    assert compose_cfg("data=csv", "data.path=/x/houses.csv").data.name == "houses"


def test_an_objective_no_run_logs_is_refused(compose_cfg) -> None:
    with pytest.raises(ConfigError, match="objective.metric=val_mae is not logged by a classification run: use one of"):
        validate(compose_cfg("objective.metric=val_mae"))
    validate(compose_cfg("objective.metric=val_loss", "objective.direction=min"))


def test_every_group_option_composes_and_validates(compose_cfg, tmp_path) -> None:
    (tmp_path / "table.csv").write_text("x,y\n1,a\n2,b\n3,a\n")
    needs = {"data=csv": (f"data.path={tmp_path / 'table.csv'}", "data.target=y")}  # the user's values
    groups = [d.name for d in CONF.iterdir() if d.is_dir() and d.name not in ("sweeps", "hydra")]
    composed = 0
    for group in groups:
        for option in sorted((CONF / group).glob("*.yaml")):
            if group == "tuner":
                continue  # composed and searched by tests/test_tuning.py
            cfg = compose_cfg(f"{group}={option.stem}", *needs.get(f"{group}={option.stem}", ()))
            validate(cfg)
            composed += 1
    assert composed >= 12
    assert OPTIMIZERS == ["adagrad", "adam", "adamw", "momentum", "nadam", "nesterov", "rmsprop", "sgd"]


def test_baseline_defaults(compose_cfg) -> None:
    cfg = compose_cfg()
    assert hidden_units(cfg) == [300, 100]
    assert cfg.optimizer._target_ == "keras.optimizers.SGD"
    assert learning_rate(cfg) == 0.01
    assert (cfg.activation, cfg.epochs, cfg.batch_size, cfg.data.validation_size) == ("relu", 30, 32, 5000)
    assert cfg.tracking.experiment == "fashion_mnist"


@pytest.mark.parametrize(
    ("overrides", "units"),
    [
        ((), [300, 100]),
        (("depth=3",), [300, 100, 33]),
        (("width=200",), [200, 67]),
        (("depth=1",), [300]),
        (("model.units=[512,256,128]",), [512, 256, 128]),
        (("model.taper=2", "depth=3"), [300, 150, 75]),
    ],
)
def test_depth_and_width_map_onto_layer_sizes(compose_cfg, overrides, units) -> None:
    assert hidden_units(compose_cfg(*overrides)) == units


def test_documented_overrides_compose(compose_cfg) -> None:
    cfg = compose_cfg(
        "lr=0.05",
        "optimizer=momentum",
        "optimizer.momentum=0.95",
        "activation=elu",
        "depth=3",
        "width=200",
        "epochs=5",
        "batch_size=64",
        "seed=1",
        "data.limit=2000",
        "tracking.experiment=demo",
    )
    validate(cfg)
    assert learning_rate(cfg) == 0.05 and cfg.optimizer.momentum == 0.95
    assert cfg.data.limit == 2000 and cfg.tracking.experiment == "demo"
    assert compose_cfg("optimizer=adam").optimizer.learning_rate == 0.001
    assert compose_cfg("data=mnist").data.name == "mnist"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("lr=-1", "lr=-1"),
        ("lr=0", "lr=0"),
        ("depth=0", "depth=0"),
        ("width=0", "width=0"),
        ("epochs=0", "epochs=0"),
        ("batch_size=0", "batch_size=0"),
        ("training.fused_steps=0", "training.fused_steps=0"),
        ("activation=relux", "activation=relux"),
        ("data.limit=-5", "data.limit=-5"),
        ("data.limit=60000", "data.limit=60000"),
        ("optimizer.momentum=1.5", "optimizer.momentum=1.5"),
        ("model.units=[100,0]", "model.units[1]=0"),
        ("data.name=cifar", "data.name=cifar"),
    ],
)
def test_bad_values_are_refused_with_one_line(compose_cfg, override, named) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(override))
    message = str(err.value)
    assert named in message and "\n" not in message


# Typos in typed choices (sweeplab.schema): refused by Hydra while it composes, before validate() runs.
TYPED_CHOICE_TYPOS = [
    (("backend=tensorflw",), "Invalid value 'tensorflw', expected one of [tensorflow, jax]"),
    (("training.verbose=loud",), "Invalid value 'loud', expected one of [auto, 0, 1, 2]"),
    (("training.verbose=3",), "Invalid value '3'"),
    (("tuner=random", "tuner.kind=randon"), "Invalid value 'randon', expected one of [random, hyperband, bayesian]"),
    (("pruner=percentile", "pruner.kind=medain"), "Invalid value 'medain', expected one of [median, percentile]"),
    (("tuner=hyperband", "tuner.factor=three"), "tuner.factor=three"),
    (("pruner=median", "pruner.min_runs=many"), "pruner.min_runs=many"),
    (("tuner=randon",), "Could not find 'tuner/randon'"),
    (("pruner=medain",), "Could not find 'pruner/medain'"),
]


@pytest.mark.parametrize(("overrides", "named"), TYPED_CHOICE_TYPOS, ids=[" ".join(o) for o, _ in TYPED_CHOICE_TYPOS])
def test_typed_choices_are_refused_at_composition(compose_cfg, overrides, named) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(*overrides)
    assert named in str(err.value) or named in str(err.value.__cause__)


def test_typed_choices_read_and_log_as_the_strings_they_were(compose_cfg) -> None:
    """Enum values compare, print and serialise as the YAML's strings: code, params and hashes see no change."""
    for verbose in ("auto", "0", "1", "2"):
        cfg = compose_cfg(f"training.verbose={verbose}")
        assert cfg.training.verbose == verbose and f"{cfg.training.verbose}" == verbose
    cfg = compose_cfg("backend=jax", "tuner=bayesian", "pruner=percentile")
    assert (cfg.backend, cfg.tuner.kind, cfg.pruner.kind) == ("jax", "bayesian", "percentile")
    assert cfg.pruner.percentile == 25 and isinstance(cfg.pruner.percentile, int)  # logged as 25, not 25.0
    assert json.dumps([cfg.backend, cfg.tuner.kind]) == '["jax", "bayesian"]'
    assert "backend: jax" in OmegaConf.to_yaml(cfg) and "kind: bayesian" in OmegaConf.to_yaml(cfg)
    for kind in ("random", "hyperband", "bayesian"):  # each schema adds no key: the search's project name hashes them
        written = set(OmegaConf.load(CONF / "tuner" / f"{kind}.yaml")) - {"defaults"}
        assert set(compose_cfg(f"tuner={kind}").tuner) == written | {"space"}


def test_validate_names_the_shipped_optimizers(compose_cfg) -> None:
    cfg = compose_cfg()
    cfg.optimizer = None
    with pytest.raises(ConfigError, match=re.escape("optimizer=" + "|".join(OPTIMIZERS)) + "$"):
        validate(cfg)


def test_activation_list_matches_keras() -> None:
    import keras

    public = {n for n in dir(keras.activations) if not n.startswith("_")} - {"get", "serialize", "deserialize"}
    assert set(KERAS_ACTIVATIONS) == public - {"threshold"}


def test_config_hash_ignores_where_and_how_a_run_is_recorded(compose_cfg) -> None:
    base = config_hash(compose_cfg())
    assert base == config_hash(compose_cfg("tracking.experiment=other", "force=true", "training.threads=1"))
    assert base == config_hash(compose_cfg("lr=0.01"))  # the same effective learning rate
    assert base != config_hash(compose_cfg("lr=0.02"))
    assert base != config_hash(compose_cfg("seed=1"))
    assert OmegaConf.is_config(compose_cfg())

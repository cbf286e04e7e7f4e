"""The builder gives the tutorial's network."""

from __future__ import annotations

from sweeplab.model import build_mlp


def test_baseline_mlp_has_266610_parameters() -> None:
    model = build_mlp((28, 28), [300, 100], "relu", 10)
    assert model.count_params() == 266_610
    assert [layer.__class__.__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense", "Dense"]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.output_shape == (None, 10)


def test_explicit_units_and_activation() -> None:
    model = build_mlp((28, 28), [512, 256, 128], "elu", 10)
    assert [layer.units for layer in model.layers[1:]] == [512, 256, 128, 10]
    assert model.layers[1].activation.__name__ == "elu"

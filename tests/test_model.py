"""The shipped builders give the tutorial's network and a small CNN, for classification and regression."""

from __future__ import annotations

import keras
import numpy as np

from sweeplab.model import build_cnn, build_mlp


def test_baseline_mlp_has_266610_parameters() -> None:
    model = build_mlp((28, 28), 10)
    assert model.count_params() == 266_610
    assert [layer.__class__.__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense", "Dense"]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.output_shape == (None, 10)


def test_explicit_units_and_activation() -> None:
    model = build_mlp((28, 28), 10, units=[512, 256, 128], activation="elu")
    assert [layer.units for layer in model.layers[1:]] == [512, 256, 128, 10]
    assert model.layers[1].activation.__name__ == "elu"


def test_depth_and_width_taper() -> None:
    model = build_mlp((8,), 3, depth=3, width=90, taper=3.0)
    assert [layer.units for layer in model.layers[1:]] == [90, 30, 10, 3]


def test_regression_ends_linear() -> None:
    model = build_mlp((10,), 1, task="regression")
    assert model.layers[-1].activation.__name__ == "linear"
    assert model.output_shape == (None, 1)


def test_cnn_takes_grayscale_images_and_ends_in_the_classes() -> None:
    model = build_cnn((28, 28), 10, filters=8, dense=16, dropout=0.5)
    assert model.output_shape == (None, 10)
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds[:3] == ["Reshape", "Conv2D", "MaxPooling2D"] and kinds.count("Dropout") == 2
    assert [layer.filters for layer in model.layers if hasattr(layer, "filters")] == [8, 16]
    probabilities = np.asarray(model(np.zeros((2, 28, 28), np.float32)))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_auto_xla_is_off_for_convolutions_on_a_cpu(capsys) -> None:
    from sweeplab.perf.xla import has_convolutions, jit_compile

    cnn, mlp = build_cnn((28, 28), 10), build_mlp((28, 28), 10)
    nested = keras.Sequential([keras.Input((28, 28)), cnn])
    assert has_convolutions(cnn) and has_convolutions(nested) and not has_convolutions(mlp)
    assert jit_compile("auto", mlp) is True and capsys.readouterr().out == ""
    assert jit_compile("auto", cnn) is False  # this machine has no GPU
    assert "training.jit_compile=auto: XLA is off for this model" in capsys.readouterr().out
    assert jit_compile(True, cnn) is True and jit_compile(False, mlp) is False  # as set

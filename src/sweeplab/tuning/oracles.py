"""Keras Tuner's three oracles, each drawing the baseline (every hyperparameter's default) as trial 0."""

from __future__ import annotations

import keras_tuner

from sweeplab import compat

RandomSearchOracle = compat.baseline_first(keras_tuner.oracles.RandomSearchOracle)
HyperbandOracle = compat.baseline_first(keras_tuner.oracles.HyperbandOracle)
BayesianOptimizationOracle = compat.baseline_first(keras_tuner.oracles.BayesianOptimizationOracle)

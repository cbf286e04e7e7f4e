"""A loader for sweeplab: scikit-learn's bundled handwritten digits (1,797 images of 8x8, no download).

sweeplab calls it with the keys of conf/data/digits.yaml that it does not read itself and expects what
keras.datasets' load_data() returns: ((x_train, y_train), (x_test, y_test)).
"""

from __future__ import annotations

import numpy as np


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> tuple:
    """The digits as 8x8 float32 images (values 0 to 16) and integer labels, shuffled with `split_seed`,
    `test_fraction` of them held out as the test set."""
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be between 0 and 1")
    digits = sklearn_digits()
    x = digits.images.astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = round(len(x) * test_fraction)
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])

"""The tracked run's training with MLflow switched off: the "tracking off" side of the bench.

Same config (composed by Hydra from conf/ with the same overrides), same data, threads, seed, model,
compiled steps, fit with validation each epoch, evaluate and predict; no MLflow import, no callbacks
that log, no artifacts. `python -m bench.untracked epochs=3 ...` takes sweep.py's overrides.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from sweeplab.config import register_configs, validate
from sweeplab.runtime import exit_quickly, pause_gc, quiet_tensorflow

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def main(overrides: list[str]) -> None:
    pause_gc()  # as sweep.py does, until fresh_start
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    validate(cfg)
    if cfg.get("backend"):
        os.environ["KERAS_BACKEND"] = str(cfg.backend)
    quiet_tensorflow()
    from sweeplab.data import load_dataset
    from sweeplab.runtime import configure_threads, fresh_start
    from sweeplab.steps import fit_batch_size
    from sweeplab.train import EVAL_BATCH_SIZE, compile_model  # train imports MLflow only where it logs

    data = load_dataset(cfg.data)
    configure_threads(cfg.training.threads)
    fresh_start(cfg.seed)
    model = compile_model(cfg, data)
    started = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        epochs=cfg.epochs,
        batch_size=fit_batch_size(cfg.batch_size, cfg.training.fused_steps),
        validation_data=(data.x_valid, data.y_valid),
        validation_batch_size=EVAL_BATCH_SIZE,
        verbose=0,
    )
    train_time = time.perf_counter() - started
    test = model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
    model.predict(data.x_test, batch_size=EVAL_BATCH_SIZE, verbose=0)
    print(f"untracked: test_accuracy={test['accuracy']:.4f} train_time={train_time:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
    exit_quickly(0)  # as sweep.py ends: the two sides differ only by MLflow

"""The tracked run's training with MLflow switched off: the "tracking off" side of the bench.

A Hydra app over the same conf/ as sweep.py, so that Hydra's own job work (composing, the output folder
and its .hydra/ files, logging) counts on both sides. Same data, threads, seed, model, compiled steps, fit
with validation each epoch, evaluate and predict; no MLflow import, no callbacks that log, no artifacts.
`python -m bench.untracked epochs=3 ...` takes sweep.py's overrides.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sweeplab.backend import quiet_start, select_backend
from sweeplab.config import register_configs
from sweeplab.perf.process import steady_malloc
from sweeplab.signals import handle_signals
from sweeplab.validate import validate

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    steady_malloc()  # as sweeplab.cli.sweep.run, up to the run
    quiet_start()
    handle_signals()
    validate(cfg)
    select_backend(cfg.backend, cfg.training.threads)
    from sweeplab.backend import configure_threads, fresh_start
    from sweeplab.data import load_dataset
    from sweeplab.perf.fused_steps import fit_batch_size, fused_steps_of
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
        batch_size=fit_batch_size(cfg.batch_size, fused_steps_of(model)),
        validation_data=(data.x_valid, data.y_valid),
        validation_batch_size=EVAL_BATCH_SIZE,
        verbose=0,
    )
    train_time = time.perf_counter() - started
    test = model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
    model.predict(data.x_test, batch_size=EVAL_BATCH_SIZE, verbose=0)
    print(f"untracked: test_accuracy={test['accuracy']:.4f} train_time={train_time:.2f}", flush=True)


if __name__ == "__main__":
    # Started and ended as sweep.py is (garbage collector paused until fresh_start, no interpreter
    # teardown): the two sides differ only by MLflow.
    from sweeplab.cli.sweep import run

    run(main)

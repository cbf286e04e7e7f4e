"""`python sweep.py`: Hydra composes the config, the library does the work.

Nothing here imports TensorFlow at module level, so `--help`, `--cfg job` and refusing a bad value
answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sweeplab.config import ConfigError, register_configs
from sweeplab.data import DataError
from sweeplab.runtime import handle_sigterm, quiet_tensorflow

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

register_configs()


def fail(message: str) -> None:
    """One line on stderr, exit status 2: how bad input is refused."""
    print(f"sweeplab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one configured run and return its final val_accuracy (the value sweepers optimise)."""
    quiet_tensorflow()
    handle_sigterm()
    from sweeplab.sweep_job import in_multirun, run_job
    from sweeplab.train import run

    if in_multirun():
        return run_job(cfg)  # resumable; a failure is raised so that Hydra records it and goes on
    try:
        result = run(cfg)
    except (ConfigError, DataError) as err:
        fail(str(err))
    return result.metrics["val_accuracy"]

"""sweeplab: tracked hyperparameter sweeps of Keras models.

The names below are its Python API, imported on first use: `import sweeplab` stays light (no TensorFlow,
no MLflow), as Hydra's plugin discovery and the sweep's launching process need.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Each public name and the module that defines it.
_API = {
    "run": "sweeplab.train",  # one tracked training run of a validated config
    "RunResult": "sweeplab.train",
    "run_config": "sweeplab.seeds.runs",  # the same, with seeds=N: a run per seed under the config's run
    "search": "sweeplab.tuning.search",  # a Keras Tuner search as a study
    "SearchResult": "sweeplab.tuning.summary",
    "load_dataset": "sweeplab.data",
    "Dataset": "sweeplab.data",
    "build_model": "sweeplab.builder",
    "config_hash": "sweeplab.config",  # a config's identity, as runs are tagged with it
    "compare_runs": "sweeplab.compare.analysis",  # groups of runs compared by a param
    "Comparison": "sweeplab.compare.analysis",
    "write_report": "sweeplab.compare.report",
    "model_source": "sweeplab.predict",  # what a logged model was trained on
    "predictions_table": "sweeplab.predictions",
    "SweeplabError": "sweeplab.errors",  # every error sweeplab raises on purpose
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'sweeplab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

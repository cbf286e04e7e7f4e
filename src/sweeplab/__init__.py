"""sweeplab: tracked hyperparameter sweeps of Keras models."""

__version__ = "0.1.0"

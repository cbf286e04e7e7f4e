"""Seeds as an axis of every run: a config trained with several seeds, each seed a nested run."""

"""sweeplab's benchmark suite: `python -m bench` (`make bench`); `python -m bench --quick` is a smoke run."""

"""Train the configured model, or sweep it: `python sweep.py --help`, `python sweep.py -m lr=0.001,0.01,0.1`."""

from sweeplab.cli.sweep import run

if __name__ == "__main__":
    run()

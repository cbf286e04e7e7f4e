"""Predict with a logged model: `python predict.py --model runs:/<run id>/model [--images FILE ...]`."""

from sweeplab.cli.predict import main

if __name__ == "__main__":
    main()

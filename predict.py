"""Predict with a logged model: `python predict.py --model runs:/<run id>/model [--images FILE ...]`."""

from sweeplab.predict_cli import main

if __name__ == "__main__":
    main()

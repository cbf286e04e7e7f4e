"""`python predict.py`: arguments in, a predictions table out; bad input is one line, exit 2."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sweeplab.backend import load_keras, quiet_start
from sweeplab.cli import fail
from sweeplab.errors import DataError, PredictError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predict.py",
        description="Class names and probabilities from a model logged by sweeplab, for the first test "
        "images (default) or for image files.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="MLflow model URI: runs:/<run id>/model, models:/<model id>, or from the registry "
        "models:/<name>/<version>, models:/<name>/latest, models:/<name>@<alias> (a search's best so far: "
        "models:/fashion-mnist-mlp@champion)",
    )
    p.add_argument(
        "--images",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="PNG/JPG (grayscale, resized to "
        "28x28) or .npy files; default: the first --count test images of the model's dataset",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="invert image files (dark object on white paper; the training images are light on black)",
    )
    p.add_argument("--count", type=int, default=3, help="how many test images (default 3, as the tutorial)")
    p.add_argument(
        "--data",
        choices=["fashion_mnist", "mnist"],
        help="test images from this dataset (default: the one the model's run trained on)",
    )
    p.add_argument("--data-path", help="a folder of IDX files or an .npz in the Keras layout (as data.path)")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else mlruns/mlflow.db)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_start()
    from sweeplab.predict import (
        default_class_names,
        model_source,
        predict,
        predictions_table,
        read_image,
        test_images,
    )
    from sweeplab.tracking.store import default_store_uri

    if args.count < 1:
        fail(f"--count={args.count}: give 1 or more", prog="predict")
    load_keras()  # before the model's code imports it: without TensorFlow's start-up lines
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_store_uri()
    try:
        source = model_source(args.model, tracking_uri=uri)
        dataset = args.data or source.dataset or "fashion_mnist"
        class_names = source.class_names or default_class_names(dataset)
        labels = names = None
        if args.images:
            import numpy as np

            stacks = [read_image(path, invert=args.invert) for path in args.images]
            names = [
                f"{p.name}[{i}]" if len(s) > 1 else p.name
                for p, s in zip(args.images, stacks, strict=False)
                for i in range(len(s))
            ]
            images = np.concatenate(stacks)
        else:
            data_path = args.data_path or (source.data_path if dataset == source.dataset else None)
            images, labels = test_images(dataset, data_path, args.count)
        probabilities = predict(args.model, images, tracking_uri=uri)
        table = predictions_table(probabilities, class_names, labels=labels, names=names)
    except (PredictError, DataError) as err:
        fail(err, prog="predict", status=2)
    shown = [c for c in ("index", "image", "true", "predicted", "probability") if c in table]
    print(f"predict: {args.model}" + (f" (run {source.run_id})" if source.run_id else ""))
    print(table[shown].to_string(index=False))
    return 0

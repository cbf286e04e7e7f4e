"""`python predict.py`: arguments in, a predictions table out; bad input is one line, exit 2."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.backend import load_keras, quiet_start
from sweeplab.cli import fail
from sweeplab.errors import DataError, PredictError

if TYPE_CHECKING:
    import pandas as pd

    from sweeplab.predict import ModelSource


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predict.py",
        description="Class names and probabilities, or predicted numbers (regression), from a model logged by "
        "sweeplab: for the first test images or table rows of the model's data (default), for image files, or "
        "for the rows of a CSV file (a table model).",
    )
    p.add_argument(
        "--model",
        required=True,
        help="MLflow model URI: runs:/<run id>/model, models:/<model id>, or from the registry "
        "models:/<name>/<version>, models:/<name>/latest, models:/<name>@<alias> (a search's best so far: "
        "models:/fashion-mnist-mlp@champion)",
    )
    given = p.add_mutually_exclusive_group()
    given.add_argument(
        "--images",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="PNG/JPG (grayscale, resized to "
        "28x28) or .npy files; default: the first --count test images of the model's dataset",
    )
    given.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="a table model: predict every row of this CSV file (raw values; the model's feature columns by name, "
        "others ignored; the run's target column, if there, is shown as `true`)",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="invert image files (dark object on white paper; the training images are light on black)",
    )
    p.add_argument("--count", type=int, default=3, help="how many test images or rows (default 3, as the tutorial)")
    p.add_argument(
        "--data",
        choices=["fashion_mnist", "mnist"],
        help="test images from this dataset (default: the one the model's run trained on)",
    )
    p.add_argument(
        "--data-path",
        help="a folder of IDX files or an .npz in the Keras layout, or a table model's CSV file (as data.path)",
    )
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else mlruns/mlflow.db)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_start()
    from sweeplab.tracking.store import tracking_uri

    if args.count < 1:
        fail(f"--count={args.count}: give 1 or more", prog="predict")
    load_keras()  # before the model's code imports it: without TensorFlow's start-up lines
    uri = tracking_uri(given=args.tracking_uri)
    try:
        source, table = predictions(args, uri)
    except (PredictError, DataError) as err:
        fail(err, prog="predict", status=2)
    from sweeplab.predictions import shown_columns

    print(f"predict: {args.model}" + (f" (run {source.run_id})" if source.run_id else ""))
    print(table[shown_columns(table)].to_string(index=False))
    return 0


def predictions(args: argparse.Namespace, uri: str) -> tuple[ModelSource, pd.DataFrame]:
    """What the model was trained on and its predictions table for the inputs the arguments ask for."""
    from sweeplab.predict import as_outputs, model_source, predict
    from sweeplab.predictions import predictions_table

    source = model_source(args.model, tracking_uri=uri)
    inputs, true, names, class_names = model_inputs(args, source)
    outputs, class_names = as_outputs(predict(args.model, inputs, tracking_uri=uri), class_names)
    return source, predictions_table(outputs, source.task, class_names, true=true, names=names)


def model_inputs(args: argparse.Namespace, source: ModelSource) -> tuple[Any, Any, list[str] | None, list[str]]:
    """(inputs, true values or None, image names or None, class names) for what the arguments ask."""
    from sweeplab.predict import csv_rows, default_class_names

    if source.is_table and args.images:
        raise PredictError(f"--images: the model takes table rows ({', '.join(source.features)}); give --csv FILE")
    if args.csv:
        inputs, true = csv_rows(args.csv, source)
        return inputs, true, None, source.class_names
    dataset = args.data or source.dataset or "fashion_mnist"
    class_names = source.class_names or default_class_names(dataset)
    if args.images:
        inputs, names = image_files(args.images, args.invert)
        return inputs, None, names, class_names
    return test_inputs(args, source, dataset, class_names)


def image_files(paths: list[Path], invert: bool) -> tuple[Any, list[str]]:
    """The images of the files, stacked, and a name for each: the file's, with [i] for a stack's i-th image."""
    import numpy as np

    from sweeplab.predict import read_image

    stacks = [read_image(path, invert=invert) for path in paths]
    names = [
        f"{p.name}[{i}]" if len(s) > 1 else p.name for p, s in zip(paths, stacks, strict=False) for i in range(len(s))
    ]
    return np.concatenate(stacks), names


def test_inputs(
    args: argparse.Namespace, source: ModelSource, dataset: str, class_names: list[str]
) -> tuple[Any, Any, None, list[str]]:
    """The first --count test rows of the run's own data config (a _target_ loader), else test images."""
    from sweeplab.predict import test_images, test_rows

    if source.data is not None and not args.data:
        inputs, true, found = test_rows(source, args.count, args.data_path)
        return inputs, true, None, class_names if source.class_names else found
    data_path = args.data_path or (source.data_path if dataset == source.dataset else None)
    images, labels = test_images(dataset, data_path, args.count)
    return images, labels, None, class_names

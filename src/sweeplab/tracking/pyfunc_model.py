"""The code of every model sweeplab logs (MLflow's "models from code": this file is copied into the model).

It serves the Keras model saved beside it with plain inference settings, and predicts without progress
output wherever the model is loaded: mlflow.pyfunc, `mlflow models serve`, predict.py. Keras's own predict
draws a progress bar per call (into a server's log, once per request) and MLflow's Keras flavours call it
with its defaults. It runs without sweeplab installed: it imports only Keras, NumPy and MLflow.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

KERAS_MODEL = "keras_model"  # the artifact holding the .keras file
BATCH_SIZE = 1000


class KerasClassifier(PythonModel):
    """Class probabilities, one row per image, from the Keras model in the artifact `keras_model`."""

    def load_context(self, context: Any) -> None:
        self.model = keras.saving.load_model(context.artifacts[KERAS_MODEL], compile=False)

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        images = np.asarray(model_input, dtype=np.float32)
        return keras.ops.convert_to_numpy(self.model.predict(images, batch_size=BATCH_SIZE, verbose=0))


set_model(KerasClassifier())

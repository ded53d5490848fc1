"""Metrics under Keras's module path: `from rnnkit.metrics import BinaryAccuracy` as
`from keras.metrics import BinaryAccuracy`.

Re-exports `rnnkit.training.metrics` (streaming means with Keras's names and semantics).
"""

from rnnkit.training.metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    Mean,
    MeanAbsoluteError,
    MeanMetricWrapper,
    MeanSquaredError,
    Metric,
    SparseCategoricalAccuracy,
    binary_accuracy,
    categorical_accuracy,
    get,
    serialize,
    sparse_categorical_accuracy,
)

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "Mean",
    "MeanAbsoluteError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "Metric",
    "SparseCategoricalAccuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "get",
    "serialize",
    "sparse_categorical_accuracy",
]

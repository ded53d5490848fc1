"""Callbacks: code that `fit`, `evaluate` and `predict` call at fixed points, as in Keras 3
(the hooks and their order are described in `callback.py`).

The protocol lives in `callback.py`; the ready-made callbacks by family: `stopping.py`
(`EarlyStopping`, `TerminateOnNaN`), `learning_rate.py` (`LearningRateScheduler`,
`ReduceLROnPlateau`), `file_callbacks.py` (`ModelCheckpoint`, `CSVLogger`), with
`LambdaCallback` beside the protocol; `History`, the progress bar and `TensorBoard` live in
`history.py`, `progress.py` and `tensorboard.py`. This module gathers the public names.

Example:
    >>> stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    >>> model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[stop])
"""

from rnnkit.training.callback import Callback, CallbackList, LambdaCallback, Logs
from rnnkit.training.file_callbacks import CSVLogger, ModelCheckpoint
from rnnkit.training.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from rnnkit.training.stopping import EarlyStopping, TerminateOnNaN

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "LambdaCallback",
    "LearningRateScheduler",
    "Logs",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]

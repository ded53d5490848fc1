"""Callbacks: code that `fit`, `evaluate` and `predict` call at fixed points, as in Keras 3.

A callback subclasses `Callback` and overrides the hooks it needs. `fit` calls, in order:
`on_train_begin`, then per epoch `on_epoch_begin(epoch)`, per batch
`on_train_batch_begin(batch)` / `on_train_batch_end(batch, logs)`, the `on_test_*` hooks while
it validates, `on_epoch_end(epoch, logs)`, and finally `on_train_end(logs)`. `logs` maps names
to floats: `{"loss": 0.52, "acc": 0.74, "val_loss": ..., "val_acc": ...}`; batch logs hold the
running means over the epoch so far. A callback stops training by setting
`self.model.stop_training = True`. `self.model` and `self.params` (`verbose`, `epochs`,
`steps`) are set before training starts.

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

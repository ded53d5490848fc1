"""Keras 3's training workflow on PyTorch: losses, metrics, optimizers, callbacks, the fit loop.

The model classes call `loop.compile / fit / evaluate / predict` (see `loop.py` for the model
interface they rely on; `compile.py`, `data_adapters.py` and `step.py` hold its parts). The
submodules `losses`, `metrics`, `optimizers` and `callbacks` hold
the names users type, as in `keras.losses`, `keras.metrics`, `keras.optimizers` and
`keras.callbacks`.
"""

from rnnkit.training import callbacks, losses, metrics, optimizers
from rnnkit.training.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from rnnkit.training.finite import NonFiniteLossError
from rnnkit.training.history import History
from rnnkit.training.loop import Compiled, compile, evaluate, fit, predict
from rnnkit.training.progress import Progbar, ProgbarLogger
from rnnkit.training.tensorboard import TensorBoard

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "Compiled",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "Progbar",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "callbacks",
    "compile",
    "evaluate",
    "fit",
    "losses",
    "metrics",
    "optimizers",
    "predict",
]

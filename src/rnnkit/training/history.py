"""`History`: the record of a `fit` call, epoch by epoch, as Keras returns it.

history = model.fit(x, y, epochs=10, validation_split=0.2)
history.history["val_acc"]      # one float per epoch
history.epoch                   # [0, 1, ..., 9]
history.params                  # {"verbose": 1, "epochs": 10, "steps": 157}
"""

from __future__ import annotations

from typing import Any

from rnnkit.training.callback import Callback, Logs


class History(Callback):
    """Records the logs of every epoch; `fit` adds one and returns it.

    Attributes:
        history: `{name: [value per epoch]}`, e.g. `{"acc": [...], "loss": [...],
            "val_acc": [...], "val_loss": [...]}`.
        epoch: the 0-based indices of the epochs recorded.
        params: `{"verbose", "epochs", "steps"}` of the `fit` call.
        model: the model trained.
        skipped_batches: `(epoch, batch)` (0-based) of each batch that
            `fit(..., skip_nonfinite_batches=True)` skipped for a NaN or inf loss or gradient.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []
        self.skipped_batches: list[tuple[int, int]] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

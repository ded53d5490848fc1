"""Callbacks that write files while training: `ModelCheckpoint` (the model) and `CSVLogger` (the
logs). In a distributed run only process 0 writes."""

from __future__ import annotations

import csv
import os
from typing import Any

from rnnkit.training import distributed
from rnnkit.training.callback import Callback, Logs, print_on_primary
from rnnkit.training.monitor import MonitorCallback


class ModelCheckpoint(MonitorCallback):
    """Saves the model (or its weights) at the end of each epoch (from process 0 only in a
    distributed run).

    Args:
        filepath: where to save; may hold format fields filled from the epoch (1-based) and the
            logs, e.g. `"ckpt-{epoch:02d}-{val_loss:.2f}.rnnkit"`.
        monitor: the quantity that decides "best" (default "val_loss").
        verbose: 1 prints a line per decision (default 0).
        save_best_only: save only when `monitor` improves (default False: every epoch).
        save_weights_only: call `model.save_weights(path)` instead of `model.save(path)`
            (default False).
        mode: "auto" (default), "min" or "max".
        initial_value_threshold: the value to beat before the first save (default None).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"ModelCheckpoint cannot fill filepath={self.filepath!r} from epoch and logs "
                f"{sorted(logs)}: {error!r}"
            ) from None
        if self.save_best_only:
            current = self._monitored(logs)
            if current is not None:
                best = "None" if self.best is None else f"{self.best:.5f}"
                if not self._is_improvement(current, self.best):
                    if self.verbose > 0:
                        print_on_primary(
                            f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}"
                        )
                    return
                if self.verbose > 0:
                    print_on_primary(
                        f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                        f"{current:.5f}, saving model to {path}"
                    )
                self.best = current
        elif self.verbose > 0:
            print_on_primary(f"\nEpoch {epoch + 1}: saving model to {path}")
        if not distributed.is_primary():
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file: `epoch,acc,loss,val_acc,val_loss`
    (from process 0 only in a distributed run).

    Args:
        filename: the CSV file.
        separator: the column separator (default ",").
        append: add to an existing file instead of overwriting it (default False); the header
            is written only if the file is empty.
    """

    def __init__(
        self, filename: str | os.PathLike, separator: str = ",", append: bool = False
    ) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file: Any = None
        self._writer: csv.DictWriter | None = None
        self.keys: list[str] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if not distributed.is_primary():
            return
        write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as existing:
                write_header = not existing.readline()
        self._close()
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._write_header = write_header
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if not distributed.is_primary():
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self._writer is None:
            self._writer = csv.DictWriter(
                self._file, fieldnames=["epoch", *self.keys], delimiter=self.separator
            )
            if self._write_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._writer = None

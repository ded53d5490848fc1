"""Epochs of batches from a `DataAdapter`, with Keras 3's `steps_per_epoch` rules.

Without `steps_per_epoch` an epoch is one pass over the data. With it, an epoch is that many
batches, and the pass continues across epochs (Keras's `EpochIterator`); when a pass runs out
within an epoch, the epoch ends early with a warning and the next epoch starts a new pass.
Data that can be iterated only once (a generator) has nothing for a new pass: the iterator then
reports itself `exhausted`, with Keras's warning, and `fit` stops training.

In a distributed run, data that gives each process its own batches (a DataLoader, a generator)
is checked at every step: all processes must have a batch, or none; the batch sizes are summed
so that each process weighs its loss by its share of the global batch.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator

from rnnkit.training import distributed
from rnnkit.training.array_data import num_samples
from rnnkit.training.batches import Batch
from rnnkit.training.data_adapters import DataAdapter

RAN_OUT_MESSAGE = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches."
)


class EpochIterator:
    """Iterates the epochs of `adapter`.

    Args:
        adapter: the data.
        steps: batches per epoch (`steps_per_epoch`), or None for one pass.
        group: the processes of a distributed run (their steps are checked to agree).
        argument: the data's argument name, for messages.
        training: whether this is fit's training data (whose running out is warned about and
            stops training); for evaluation, the caller reports an epoch without batches.

    Attributes:
        exhausted: True once one-shot data has run out (fit then stops training).
    """

    def __init__(
        self,
        adapter: DataAdapter,
        steps: int | None = None,
        group: distributed.Group = distributed.SINGLE_PROCESS,
        argument: str = "x",
        training: bool = True,
    ) -> None:
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1
        ):
            raise ValueError(
                f"The number of steps for `{argument}` must be a positive integer or None; "
                f"received {steps!r}."
            )
        if adapter.endless and steps is None:
            raise ValueError(
                f"`{argument}` is a PyDataset without a length (no __len__), so an epoch "
                "would never end: pass the number of steps to take from it (steps_per_epoch, "
                "validation_steps or steps)."
            )
        self.adapter = adapter
        self.steps = None if steps is None else int(steps)  # NumPy integers too
        self.group = group
        self.argument = argument
        self.training = training
        self.exhausted = False
        self._pass: Iterator[Batch] | None = None
        self._seen = 0  # batches taken from the current pass
        self._yielded_any = False

    @property
    def num_batches(self) -> int | None:
        """Batches in one epoch (None when unknown until the data runs out)."""
        return self.steps or self.adapter.num_batches

    def _next(self) -> Batch | None:
        known = self.adapter.num_batches
        batch = None
        if self._pass is not None and (known is None or self._seen < known):
            batch = next(self._pass, None)
        if self.adapter.per_process and self.group.distributed:
            size = None if batch is None else num_samples(batch.x, "x")
            total = self.group.agree_on_batch(size, self.argument)
            if batch is not None:
                batch = batch._replace(share=size * self.group.world_size / total)
        return batch

    def restart(self) -> None:
        """Makes the next epoch start a new pass (each evaluation starts from the beginning)."""
        self._pass = None

    def epoch(self) -> Iterator[tuple[int, Batch]]:
        """Yields `(step, batch)` for one epoch; calls the adapter's epoch hooks around it."""
        self.adapter.on_epoch_begin()
        try:
            if self.steps is None or self._pass is None:
                self._pass, self._seen = self.adapter.new_pass(), 0
            step = 0
            while self.steps is None or step < self.steps:
                batch = self._next()
                if batch is None:
                    self._ran_out(step)
                    break
                self._seen += 1
                self._yielded_any = True
                yield step, batch
                step += 1
            known = self.adapter.num_batches
            if known is not None and self._seen >= known:
                self._pass = None
        finally:
            self.adapter.on_epoch_end()

    def _ran_out(self, step: int) -> None:
        self._pass = None
        if self.training and not self._yielded_any:
            raise ValueError(f"`{self.argument}` yielded no batches: fit has nothing to train on.")
        if not self.training:
            if step == 0:
                self.exhausted = True
            return
        if self.adapter.one_shot and (step == 0 or self.steps is not None):
            self.exhausted = True
            warnings.warn(RAN_OUT_MESSAGE, stacklevel=4)
        elif step == 0:
            self.exhausted = True
            warnings.warn(
                f"`{self.argument}` yielded no more batches. {RAN_OUT_MESSAGE}", stacklevel=4
            )
        elif self.steps is not None:
            length = self.adapter.num_batches
            pass_size = "" if length is None else f" (a pass over the data is {length} batches)"
            warnings.warn(
                f"The data ran out after {step} of steps_per_epoch={self.steps} batches in this "
                f"epoch{pass_size}; the epoch ends early and the next one starts a new pass.",
                stacklevel=4,
            )

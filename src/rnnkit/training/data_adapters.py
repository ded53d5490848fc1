"""Any data given to `fit`, `evaluate` or `predict`, as batches of tensors (Keras 3's adapters).

`x` may be:

- NumPy arrays or torch tensors, with `y` and `sample_weight` beside them (see `array_data.py`):
  batched by `batch_size`, reshuffled every epoch when `shuffle=True`;
- a `torch.utils.data.Dataset` whose items are `x`, `(x, y)` or `(x, y, sample_weight)` for
  one sample: batched by `batch_size` (items stacked by torch's `default_collate`), reshuffled
  every epoch when `shuffle=True`;
- a `PyDataset` (`rnnkit.utils.PyDataset`, Keras's `keras.utils.PyDataset`): whole batches by
  index, in a new order every epoch when `shuffle=True`, prepared ahead by `workers` threads
  when it has more than one; its `on_epoch_begin`/`on_epoch_end` run around every epoch;
- a `torch.utils.data.DataLoader` (used as it is: it batches and shuffles), or any other
  iterable or generator of batches `x`, `(x, y)` or `(x, y, sample_weight)`.

Batches may hold NumPy arrays or tensors; floating ones take the model's float dtype. With a
dataset, `y` and `sample_weight` come from its batches (passing them too is an error);
`class_weight` applies to every kind. An epoch is one pass over the data, or `steps_per_epoch`
batches: the pass then continues across epochs, and when it runs out the epoch ends early with a
warning and the next starts a new pass. A generator can be iterated only once: when it is used
up, training stops with Keras's warning ("Your input ran out of data; interrupting training").

Under `torchrun`, arrays, Datasets and PyDatasets are the same on every process and each global
batch is split between the processes (see `distributed.py`). A DataLoader or generator gives each
process its own batches: each process must get different data and the same number of batches
(e.g. a DataLoader with a `DistributedSampler`); a different number is detected at the step
where it happens and raised as a `ValueError` on every process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data

from rnnkit.data.py_dataset import PyDataset
from rnnkit.training import distributed
from rnnkit.training.array_data import (
    Data,
    is_several,
    num_samples,
    prepare_arrays,
    take,
    to_data,
)
from rnnkit.training.batches import Batch, Standardizer, describe


class DataAdapter:
    """One kind of data, as passes of `Batch`es.

    Attributes:
        num_batches: batches in one pass, or None when unknown.
        one_shot: the data can be iterated only once (a generator or iterator).
        endless: the data never runs out (a PyDataset without a length).
        per_process: each process of a distributed run has its own batches (DataLoader,
            generator), rather than its part of every global batch.
    """

    num_batches: int | None = None
    one_shot = False
    per_process = False
    endless = False  # never runs out (a PyDataset without a length)
    length_unit = "samples"  # what `length_for_check` counts

    def new_pass(self) -> Iterator[Batch]:
        """The batches of one pass over the data (a new shuffle where there is one)."""
        raise NotImplementedError

    def length_for_check(self) -> int | None:
        """A size that must be the same on every process of a distributed run, or None."""
        return None

    def on_epoch_begin(self) -> None:
        """Called before every epoch."""

    def on_epoch_end(self) -> None:
        """Called after every epoch."""


class Shuffled:
    """Index orders over `count` items: the identity, or a new permutation every pass.

    Args:
        count: the number of items (samples, or a PyDataset's batches).
        shuffle: whether to permute them.
        generator: where the permutations come from.
    """

    def __init__(self, count: int, shuffle: bool, generator: torch.Generator | None) -> None:
        self.count = count
        self.shuffle = shuffle
        self.generator = generator

    def order(self) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        return torch.randperm(self.count, generator=self.generator)


def _index_batches(
    count: int, batch_size: int, order: torch.Tensor | None
) -> Iterator[slice | torch.Tensor]:
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        yield slice(start, stop) if order is None else order[start:stop]


class ArrayAdapter(DataAdapter):
    """Tensors `x`, `y`, `sample_weight` with samples on the first axis, in global batches of
    `batch_size`, each split between the processes of `group`."""

    def __init__(
        self,
        arrays: tuple[Data, Data, torch.Tensor | None],
        samples: int,
        batch_size: int,
        shuffled: Shuffled,
        group: distributed.Group,
    ) -> None:
        self.arrays = arrays
        self.samples = samples
        self.batch_size = batch_size
        self.shuffled = shuffled
        self.group = group
        self.num_batches = -(-samples // batch_size)

    def new_pass(self) -> Iterator[Batch]:
        for index in _index_batches(self.samples, self.batch_size, self.shuffled.order()):
            part, share = self.group.shard(index)
            yield Batch(*(take(a, part) for a in self.arrays), share)

    def length_for_check(self) -> int:
        return self.samples


class DatasetAdapter(DataAdapter):
    """A map-style `torch.utils.data.Dataset` of samples, batched like arrays: each process
    reads only the items of its part of every global batch."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        batch_size: int,
        shuffled: Shuffled,
        group: distributed.Group,
        standardize: Standardizer,
    ) -> None:
        self.dataset = dataset
        self.samples = len(dataset)  # type: ignore[arg-type]
        self.batch_size = batch_size
        self.shuffled = shuffled
        self.group = group
        self.standardize = standardize
        self.num_batches = -(-self.samples // batch_size)

    def new_pass(self) -> Iterator[Batch]:
        batches = _index_batches(self.samples, self.batch_size, self.shuffled.order())
        for number, index in enumerate(batches):
            part, share = self.group.shard(index)
            indices = range(part.start, part.stop) if isinstance(part, slice) else part.tolist()
            items = torch.utils.data.default_collate([self.dataset[i] for i in indices])
            yield self.standardize(items, number)._replace(share=share)

    def length_for_check(self) -> int:
        return self.samples


class PyDatasetAdapter(DataAdapter):
    """A `PyDataset` of whole batches, by index; each global batch split between processes."""

    length_unit = "batches"

    def __init__(
        self,
        dataset: PyDataset,
        shuffled: Shuffled | None,
        group: distributed.Group,
        standardize: Standardizer,
    ) -> None:
        self.dataset = dataset
        self.shuffled = shuffled
        self.group = group
        self.standardize = standardize
        self.num_batches = dataset.num_batches
        self.endless = self.num_batches is None

    def new_pass(self) -> Iterator[Batch]:
        if self.num_batches is None:
            numbers: Iterable[int] = itertools.count()
        else:
            order = None if self.shuffled is None else self.shuffled.order()
            numbers = range(self.num_batches) if order is None else order.tolist()
        for number, raw in self._fetch(numbers):
            batch = self.standardize(raw, number)
            part, share = self.group.shard(slice(0, num_samples(batch.x, "x")))
            yield Batch(*(take(a, part) for a in batch[:3]), share)

    def _fetch(self, numbers: Iterable[int]) -> Iterator[tuple[int, Any]]:
        """`(number, dataset[number])` in order; with `workers` > 1 (Keras's argument), up to
        `max_queue_size` batches are prepared ahead by that many threads."""
        workers = getattr(self.dataset, "workers", 1) or 1
        if workers <= 1:
            for number in numbers:
                yield number, self.dataset[number]
            return
        ahead = max(getattr(self.dataset, "max_queue_size", 10) or 1, 1)
        executor = concurrent.futures.ThreadPoolExecutor(workers, "rnnkit-pydataset")
        pending: collections.deque = collections.deque()
        numbers = iter(numbers)
        try:
            for number in itertools.islice(numbers, ahead):
                pending.append((number, executor.submit(self.dataset.__getitem__, number)))
            while pending:
                number, future = pending.popleft()
                following = next(numbers, None)
                if following is not None:
                    submitted = executor.submit(self.dataset.__getitem__, following)
                    pending.append((following, submitted))
                yield number, future.result()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def length_for_check(self) -> int | None:
        return self.num_batches

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


class IterableAdapter(DataAdapter):
    """A DataLoader, generator or other iterable of batches, used as it is."""

    per_process = True

    def __init__(self, iterable: Iterable[Any], standardize: Standardizer) -> None:
        self.iterable = iterable
        self.standardize = standardize
        self.one_shot = isinstance(iterable, Iterator)  # a generator: one pass only
        try:
            self.num_batches = len(iterable)  # type: ignore[arg-type]
        except TypeError:  # no __len__, or a DataLoader over an IterableDataset
            self.num_batches = None

    def new_pass(self) -> Iterator[Batch]:
        for number, raw in enumerate(self.iterable):
            yield self.standardize(raw, number)


def _is_batch_iterable(x: Any) -> bool:
    """Whether `x` is data as batches rather than arrays: an iterator, an iterable object, or a
    list/tuple of `(x, y[, sample_weight])` tuples."""
    if isinstance(x, (np.ndarray, torch.Tensor, str, bytes, dict)) or is_several(x):
        return False
    if hasattr(x, "__array__"):  # array-likes (a pandas DataFrame): arrays, as in Keras
        return False
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(item, tuple) and is_several(item) for item in x)
    return isinstance(x, Iterable)


def _kind(x: Any) -> str:
    if isinstance(x, PyDataset):
        return "a PyDataset"
    if isinstance(x, torch.utils.data.DataLoader):
        return "a DataLoader"
    if isinstance(x, torch.utils.data.IterableDataset):
        return "an IterableDataset"
    if isinstance(x, torch.utils.data.Dataset):
        return "a Dataset"
    if isinstance(x, Generator):
        return "a generator"
    if isinstance(x, Iterator):
        return "an iterator"
    return f"an iterable ({type(x).__name__})"


def shuffled_by_fit(x: Any) -> bool:
    """Whether `fit(shuffle=True)` shuffles `x`: arrays, a map-style Dataset or a PyDataset (a
    DataLoader or an iterable of batches keeps its own order)."""
    map_style = isinstance(x, torch.utils.data.Dataset) and not isinstance(
        x, torch.utils.data.IterableDataset
    )
    return not is_dataset(x) or map_style or isinstance(x, PyDataset)


def is_dataset(x: Any) -> bool:
    """Whether `x` is data as a dataset (any kind above other than arrays)."""
    return isinstance(x, (PyDataset, torch.utils.data.Dataset, torch.utils.data.DataLoader)) or (
        _is_batch_iterable(x)
    )


def adapt(
    model: torch.nn.Module,
    x: Any,
    y: Any = None,
    *,
    method: str,
    dtype: torch.dtype,
    sample_weight: Any = None,
    class_weight: dict[int, float] | None = None,
    batch_size: int = 32,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    group: distributed.Group = distributed.SINGLE_PROCESS,
    need_y: bool = True,
    argument: str = "x",
) -> DataAdapter:
    """The adapter for `x` (and `y`, `sample_weight` when `x` holds arrays).

    Args:
        model: the model (for the float dtype of arrays).
        x: the data, of any kind in the module docstring.
        y, sample_weight: targets and weights beside array `x`; must be None for a dataset.
        method: "fit", "evaluate" or "predict", for messages.
        dtype: the float dtype of floating batches.
        class_weight: `{class: weight}` turned into sample weights from each batch's targets.
        batch_size: samples per batch for arrays and Datasets.
        shuffle: reshuffle arrays, Datasets and PyDatasets every pass.
        generator: where shuffled orders come from (the same on every process).
        group: the processes that split each batch (fit's training and validation).
        need_y: whether batches must hold targets (fit, evaluate).
        argument: the argument's name, for messages ("x" or "validation_data").

    Returns:
        The `DataAdapter`.

    Raises:
        ValueError: `y` or `sample_weight` beside a dataset; malformed arrays.
    """
    if not is_dataset(x):
        if need_y:
            arrays = prepare_arrays(model, x, y, method, sample_weight, class_weight)
            data, samples = arrays[:3], arrays[3]
        else:
            if x is None:
                raise ValueError(f"`{method}` needs inputs `x`; received None.")
            inputs = to_data(x, "x", dtype)
            samples = num_samples(inputs, "x")
            if samples == 0:
                raise ValueError(f"`{method}` received no samples (x has length 0).")
            data = (inputs, None, None)
        return ArrayAdapter(data, samples, batch_size, Shuffled(samples, shuffle, generator), group)
    kind = _kind(x)
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(
                f"`{name}` must be None when `{argument}` is {kind}: the dataset's batches hold "
                f"the targets and sample weights, as (x, y) or (x, y, sample_weight); received "
                f"{name} as {describe(value)}."
            )
    standardize = Standardizer(f"`{argument}` ({kind})", dtype, need_y, class_weight)
    if isinstance(x, PyDataset):
        count = x.num_batches
        shuffled = None if count is None else Shuffled(count, shuffle, generator)
        return PyDatasetAdapter(x, shuffled, group, standardize)
    if isinstance(x, torch.utils.data.IterableDataset):
        x = torch.utils.data.DataLoader(x, batch_size=batch_size)
    elif isinstance(x, torch.utils.data.Dataset) and not isinstance(x, torch.utils.data.DataLoader):
        if not hasattr(x, "__len__"):
            raise TypeError(f"`{argument}` is a Dataset without __len__; fit needs its size.")
        shuffled = Shuffled(len(x), shuffle, generator)  # type: ignore[arg-type]
        return DatasetAdapter(x, batch_size, shuffled, group, standardize)
    return IterableAdapter(x, standardize)

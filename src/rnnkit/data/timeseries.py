"""`timeseries_dataset_from_array`: Keras's sliding windows over a series, cut lazily.

Keras builds the windows as a `tf.data` pipeline (TensorFlow needed). Here the same windows are
a `PyDataset` of batches: batch `i`'s windows are gathered from the original array only when
batch `i` is drawn, so memory stays O(series) (plus one integer per window start), not
O(windows) — all of Jena's 120-step windows would take tens of GB. The dataset is what `fit`,
`evaluate` and `predict` accept, a map-style dataset of batches for
`torch.utils.data.DataLoader(dataset, batch_size=None)`, and an iterable (`for x, y in ds`).
NumPy only.

Window `k` (in chronological order) starts at `start_index + k * sequence_stride` and holds the
steps `start + j * sampling_rate` for `j < sequence_length`; its target is
`targets[start_index + k * sequence_stride]` (Keras's rule: `targets[i]` belongs to the window
that *starts* at `i`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from rnnkit.data.py_dataset import PyDataset

# Keras's tf.data pipeline reshuffles windows locally with `dataset.shuffle(batch_size * 8)`
# when batching, and `dataset.shuffle(1024)` when it yields single windows.
_SHUFFLE_BUFFER_PER_BATCH = 8
_SHUFFLE_BUFFER_UNBATCHED = 1024


class TimeseriesDataset(PyDataset):
    """The windows of `timeseries_dataset_from_array`, one batch per index, cut when drawn.

    Build it with `timeseries_dataset_from_array` (which checks the arguments as Keras does).

    `dataset[i]` is batch `i`: `(windows, targets)` when targets were given, else `windows`;
    `windows` has shape `(batch, sequence_length, *data.shape[1:])` and the data's dtype,
    `targets` shape `(batch, *targets.shape[1:])`. The last batch may be smaller. With
    `batch_size=None` each index is one window `(sequence_length, *data.shape[1:])`.

    Shuffling, as Keras: the window starts are shuffled once with
    `np.random.RandomState(seed)` (exactly Keras's permutation), then each epoch draws them
    through a shuffle buffer of `batch_size * 8` windows (1024 unbatched), as Keras's
    `tf.data` `shuffle` does. That buffer is driven by NumPy (`default_rng((seed, epoch))`)
    rather than TensorFlow's generator, so the within-buffer order differs from Keras's while
    following the same rule; a new epoch (`on_epoch_end`, or the end of a `for` loop over the
    dataset) draws a new buffer order, as `tf.data` reshuffles on each iteration.
    """

    def __init__(
        self,
        data: np.ndarray,
        targets: np.ndarray | None,
        starts: np.ndarray,
        sequence_length: int,
        sampling_rate: int,
        batch_size: int | None,
        shuffle_seed: int | None,
    ) -> None:
        super().__init__()
        self.data = data
        self.targets = targets
        self.sequence_length = sequence_length
        self.sampling_rate = sampling_rate
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self._starts = starts  # (num_windows,) absolute first step of each window
        self._offsets = np.arange(sequence_length) * sampling_rate  # (sequence_length,)
        self._epoch = 0
        self._order = self._epoch_order()

    @property
    def num_windows(self) -> int:
        """The number of windows in one epoch."""
        return len(self._starts)

    def __len__(self) -> int:
        """The number of batches (windows when `batch_size` is None) in one epoch."""
        if self.batch_size is None:
            return self.num_windows
        return -(-self.num_windows // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        """Batch `index`: `(windows, targets)`, or `windows` when there are no targets."""
        count = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Batch index must be an int; received {index!r}.")
        if not -count <= index < count:
            raise IndexError(f"Batch index {index} out of range for {count} batches.")
        index = int(index) % count
        if self.batch_size is None:
            starts = self._starts[self._order[index]]  # one window: a scalar start
        else:
            chosen = self._order[index * self.batch_size : (index + 1) * self.batch_size]
            starts = self._starts[chosen]  # (batch,)
        windows = _gather(self.data, np.add.outer(starts, self._offsets))  # (batch, T, ...)
        if self.targets is None:
            return windows
        return windows, _gather(self.targets, starts)

    def __iter__(self) -> Iterator[Any]:
        """Yields the batches of one epoch in order, then moves to the next epoch's order."""
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def on_epoch_end(self) -> None:
        """Draws the next epoch's shuffle-buffer order (nothing changes without `shuffle`)."""
        self._epoch += 1
        if self.shuffle_seed is not None:
            self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        """Positions into `_starts` in this epoch's order: Keras's local shuffle buffer."""
        if self.shuffle_seed is None:
            return np.arange(self.num_windows)
        buffer_size = (
            _SHUFFLE_BUFFER_UNBATCHED
            if self.batch_size is None
            else self.batch_size * _SHUFFLE_BUFFER_PER_BATCH
        )
        rng = np.random.default_rng((self.shuffle_seed, self._epoch))
        return _buffer_shuffle(self.num_windows, buffer_size, rng)


def _gather(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """`array[indices]` along axis 0. `np.take` copies whole rows at once (several times faster
    than fancy indexing with a 2-D index) but first makes a contiguous copy of a strided source,
    so a strided view (e.g. a column of a larger array) is indexed in place instead."""
    if array.flags.c_contiguous:
        return np.take(array, indices, axis=0)
    return array[indices]


def _buffer_shuffle(count: int, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """The order in which a shuffle buffer of `buffer_size` emits the items `0..count-1`.

    The rule of `tf.data.Dataset.shuffle`: fill the buffer, emit a uniformly chosen item,
    refill its slot with the next input item; once the input runs out, drain the buffer at
    random.
    """
    buffer = list(range(min(buffer_size, count)))
    upcoming = len(buffer)
    order = np.empty(count, dtype=np.int64)
    picks = rng.random(count)
    for position in range(count):
        slot = int(picks[position] * len(buffer))
        order[position] = buffer[slot]
        if upcoming < count:
            buffer[slot] = upcoming
            upcoming += 1
        else:
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order


def timeseries_dataset_from_array(
    data: Any,
    targets: Any,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: int | None = 128,
    shuffle: bool = False,
    seed: int | None = None,
    start_index: int | None = None,
    end_index: int | None = None,
) -> TimeseriesDataset:
    """Creates a dataset of sliding windows over a series, as `keras.utils` does.

    Same arguments, windows, targets and errors as Keras 3's
    `keras.utils.timeseries_dataset_from_array`; the result is a lazy `TimeseriesDataset` (a
    `PyDataset` of batches) instead of a `tf.data.Dataset`.

    Args:
        data: array (or anything `np.asarray` takes, e.g. a CPU tensor) of consecutive steps;
            axis 0 is time: `(steps, *features)`. Not copied.
        targets: `targets[i]` is the target of the window that starts at step `i`, shape
            `(steps_or_fewer, *target_shape)`; None for windows without targets.
        sequence_length: steps per window.
        sequence_stride: distance between the starts of successive windows (default 1).
        sampling_rate: distance between successive steps inside a window (default 1): window
            `i` holds `data[i], data[i + r], ..., data[i + r * (sequence_length - 1)]`.
        batch_size: windows per batch (default 128), the last batch possibly smaller; None
            yields single windows.
        shuffle: draw the windows in random order instead of chronological (default False).
        seed: seed of the shuffle; default None draws one from NumPy's global generator, as
            Keras does (so `rnnkit.utils.set_random_seed` makes it repeatable).
        start_index: steps before `start_index` are not used (default None: from step 0).
        end_index: steps from `end_index` on are not used (default None: to the end).

    Returns:
        A `TimeseriesDataset`: `len(ds)` batches; `ds[i]` is `(windows, targets)` with
        windows `(batch, sequence_length, *features)` and targets `(batch, *target_shape)`,
        or only `windows` when `targets` is None.

    Raises:
        ValueError: as Keras: `start_index` negative or not below `len(data)`; `end_index` not
            above `start_index`, not below `len(data)` or not above 0; `sampling_rate` or
            `sequence_stride` not in `[1, len(data))`. Also (where Keras has no check, or
            fails later): `sequence_length` or `batch_size` not positive, `seed` outside
            `[0, 2**32)`, `targets` too short for the window starts.
        TypeError: an integer argument that is not an int.

    Example:
        >>> steps = np.arange(100)
        >>> ds = timeseries_dataset_from_array(steps[:-10], steps[10:], sequence_length=10)
        >>> windows, targets = ds[0]
        >>> windows.shape, windows[0, :3].tolist(), int(targets[0])
        ((90, 10), [0, 1, 2], 10)
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"`data` must have a time axis (axis 0); received a scalar: {data!r}.")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError(f"`targets` must have a time axis (axis 0); received {targets!r}.")
    for name, value in (
        ("sequence_length", sequence_length),
        ("sequence_stride", sequence_stride),
        ("sampling_rate", sampling_rate),
    ):
        _check_int(name, value)
    for name, value in (
        ("batch_size", batch_size),
        ("seed", seed),
        ("start_index", start_index),
        ("end_index", end_index),
    ):
        if value is not None:
            _check_int(name, value)
    _check_bounds(len(data), start_index, end_index, sampling_rate, sequence_stride)
    if sequence_length < 1:
        raise ValueError(
            f"`sequence_length` must be higher than 0. Received: sequence_length={sequence_length}"
        )
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"`batch_size` must be higher than 0. Received: batch_size={batch_size}")
    if seed is not None and not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be in [0, 2**32) (NumPy's range). Received: seed={seed}")

    # From here on, Keras's `_timeseries_dataset_tf` line by line.
    if start_index is None:
        start_index = 0
    if end_index is None:
        end_index = len(data)
    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    index_dtype = "int32" if num_seqs < 2147483647 else "int64"
    start_positions = np.arange(0, num_seqs, sequence_stride, dtype=index_dtype)
    shuffle_seed = None
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(start_positions)
        shuffle_seed = int(seed)
    last_start = start_index + int(start_positions.max(initial=-1))
    if targets is not None and last_start >= len(targets):
        # Keras's tf.gather fails only when it reaches that batch; say so before any training.
        raise ValueError(
            f"`targets` has {len(targets)} steps, too few for windows starting up to step "
            f"{last_start} (start_index={start_index}); `targets[i]` is the target of the "
            "window starting at step i."
        )
    return TimeseriesDataset(
        data,
        targets,
        start_positions.astype(np.int64) + start_index,
        sequence_length,
        sampling_rate,
        batch_size,
        shuffle_seed,
    )


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; received {name}={value!r}.")


def _check_bounds(
    length: int,
    start_index: int | None,
    end_index: int | None,
    sampling_rate: int,
    sequence_stride: int,
) -> None:
    """Keras's argument checks, in its order and with its messages."""
    if start_index:
        if start_index < 0:
            raise ValueError(
                f"`start_index` must be 0 or greater. Received: start_index={start_index}"
            )
        if start_index >= length:
            raise ValueError(
                "`start_index` must be lower than the length of the data. Received: "
                f"start_index={start_index}, for data of length {length}"
            )
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(
                "`end_index` must be higher than `start_index`. Received: "
                f"start_index={start_index}, and end_index={end_index} "
            )
        if end_index >= length:
            raise ValueError(
                "`end_index` must be lower than the length of the data. Received: "
                f"end_index={end_index}, for data of length {length}"
            )
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate <= 0:
        raise ValueError(
            f"`sampling_rate` must be higher than 0. Received: sampling_rate={sampling_rate}"
        )
    if sampling_rate >= length:
        raise ValueError(
            "`sampling_rate` must be lower than the length of the data. Received: "
            f"sampling_rate={sampling_rate}, for data of length {length}"
        )
    if sequence_stride <= 0:
        raise ValueError(
            f"`sequence_stride` must be higher than 0. Received: sequence_stride={sequence_stride}"
        )
    if sequence_stride >= length:
        raise ValueError(
            "`sequence_stride` must be lower than the length of the data. Received: "
            f"sequence_stride={sequence_stride}, for data of length {length}"
        )

"""`timeseries_dataset_from_array`: Keras's windows, targets, batches, shuffle and errors.

Expected values come from Keras 3's docstring examples and from its source
(`keras/src/utils/timeseries_dataset_utils.py`, `_timeseries_dataset_tf`): window `k` starts at
`start_index + k * sequence_stride` for `k * sequence_stride < num_seqs`, with
`num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate` (capped by
`len(targets)`), holds the steps `start + j * sampling_rate`, and has the target
`targets[start]`. TensorFlow (which Keras's version needs) is not installed here.
"""

import tracemalloc

import numpy as np
import pytest
import torch

from rnnkit.data.py_dataset import PyDataset
from rnnkit.data.timeseries import TimeseriesDataset, timeseries_dataset_from_array


def _all_windows(dataset):
    """Every batch of one epoch, concatenated: (windows, targets) or windows."""
    batches = [dataset[i] for i in range(len(dataset))]
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


def test_docstring_example_1_strides_and_sampling_rate():
    dataset = timeseries_dataset_from_array(
        np.arange(99), None, sequence_length=10, sampling_rate=2, sequence_stride=3
    )
    windows = _all_windows(dataset)
    assert windows.shape == (27, 10)  # starts 0, 3, ..., 78: 78 + 9 * 2 = 96 <= 98 < 81 + 18
    np.testing.assert_array_equal(windows[0], [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    np.testing.assert_array_equal(windows[1], [3, 5, 7, 9, 11, 13, 15, 17, 19, 21])
    np.testing.assert_array_equal(windows[2], [6, 8, 10, 12, 14, 16, 18, 20, 22, 24])
    np.testing.assert_array_equal(windows[-1], [78, 80, 82, 84, 86, 88, 90, 92, 94, 96])


def test_docstring_example_2_targets_of_the_window_start():
    data = np.random.default_rng(0).normal(size=200).astype("float32")
    dataset = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    inputs, targets = dataset[0]
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]
    windows, all_targets = _all_windows(dataset)
    assert len(windows) == 190 - 9  # num_seqs = 190 - 9 windows, below len(targets) = 190
    for k in (0, 57, len(windows) - 1):
        np.testing.assert_array_equal(windows[k], data[k : k + 10])
        assert all_targets[k] == data[k + 10]
    assert inputs.dtype == np.float32 and targets.dtype == np.float32


def test_docstring_example_3_non_overlapping_windows_zipped():
    x = np.arange(100)
    y = x * 2
    inputs = timeseries_dataset_from_array(x, None, sequence_length=20, sequence_stride=20)
    targets = timeseries_dataset_from_array(y, None, sequence_length=20, sequence_stride=20)
    for input_batch, target_batch in zip(inputs, targets):
        np.testing.assert_array_equal(input_batch[0], x[:20])
        np.testing.assert_array_equal(target_batch[1], y[20:40])
        assert input_batch.shape == (5, 20)


def test_start_and_end_index_bound_the_steps_used():
    data = np.arange(100)
    dataset = timeseries_dataset_from_array(
        data, data * 10, sequence_length=5, sampling_rate=2, start_index=10, end_index=50
    )
    windows, targets = _all_windows(dataset)
    # num_seqs = 50 - 10 - 4 * 2 = 32: starts 10..41, the last window ends at 49 < end_index.
    assert windows.shape == (32, 5)
    np.testing.assert_array_equal(windows[0], [10, 12, 14, 16, 18])
    np.testing.assert_array_equal(windows[-1], [41, 43, 45, 47, 49])
    np.testing.assert_array_equal(targets, np.arange(10, 42) * 10)  # targets[start], absolute


def test_num_seqs_is_capped_by_the_length_of_targets():
    data = np.arange(50)
    windows, targets = _all_windows(
        timeseries_dataset_from_array(data, np.arange(7), sequence_length=3)
    )
    assert len(windows) == 7  # min(50 - 2, len(targets))
    np.testing.assert_array_equal(targets, np.arange(7))


def test_batches_and_the_last_partial_batch():
    dataset = timeseries_dataset_from_array(
        np.arange(99), None, sequence_length=10, sampling_rate=2, sequence_stride=3, batch_size=10
    )
    assert isinstance(dataset, PyDataset)
    assert len(dataset) == 3
    assert [len(dataset[i]) for i in range(3)] == [10, 10, 7]
    np.testing.assert_array_equal(dataset[-1][-1], np.arange(78, 97, 2))
    with pytest.raises(IndexError, match="out of range"):
        dataset[3]


def test_multichannel_data_keeps_its_feature_axes():
    data = np.arange(60 * 14, dtype="float32").reshape(60, 14)
    targets = data[:, 1]
    dataset = timeseries_dataset_from_array(
        data, targets, sequence_length=6, sampling_rate=3, batch_size=4
    )
    windows, batch_targets = dataset[1]
    assert windows.shape == (4, 6, 14)
    np.testing.assert_array_equal(windows[0], data[4:22:3])
    np.testing.assert_array_equal(batch_targets, targets[4:8])


def test_unbatched_dataset_yields_single_windows():
    dataset = timeseries_dataset_from_array(
        np.arange(30), np.arange(30) + 100, sequence_length=4, batch_size=None
    )
    assert len(dataset) == 27
    window, target = dataset[5]
    np.testing.assert_array_equal(window, [5, 6, 7, 8])
    assert target == 105


def test_shuffle_uses_keras_permutation_of_window_starts_through_a_buffer():
    data = np.arange(1000)
    seed = 42
    dataset = timeseries_dataset_from_array(
        data, data, sequence_length=5, batch_size=2, shuffle=True, seed=seed
    )
    windows, targets = _all_windows(dataset)
    # Keras: starts = arange(num_seqs) shuffled by RandomState(seed), then a buffer of
    # batch_size * 8 = 16 windows. So the window emitted at position p is one of the first
    # p + 16 windows of Keras's permutation.
    keras_order = np.arange(996, dtype="int32")
    np.random.RandomState(seed).shuffle(keras_order)
    rank_in_keras_order = np.argsort(keras_order)[windows[:, 0]]
    assert np.all(rank_in_keras_order <= np.arange(996) + 15)
    assert np.any(rank_in_keras_order != np.arange(996))  # the buffer does reorder
    np.testing.assert_array_equal(np.sort(windows[:, 0]), np.arange(996))  # each window once
    np.testing.assert_array_equal(windows, windows[:, :1] + np.arange(5))
    np.testing.assert_array_equal(targets, windows[:, 0])  # targets follow their windows


def test_shuffle_is_repeatable_with_a_seed_and_reshuffles_each_epoch():
    def build(seed):
        return timeseries_dataset_from_array(
            np.arange(300), None, sequence_length=3, batch_size=4, shuffle=True, seed=seed
        )

    first = _all_windows(build(3))
    np.testing.assert_array_equal(first, _all_windows(build(3)))
    assert not np.array_equal(first, _all_windows(build(4)))
    dataset = build(3)
    epoch_one = np.concatenate(list(dataset))  # iterating to the end starts the next epoch
    epoch_two = np.concatenate(list(dataset))
    np.testing.assert_array_equal(epoch_one, first)
    assert not np.array_equal(epoch_one, epoch_two)
    np.testing.assert_array_equal(np.sort(epoch_one[:, 0]), np.sort(epoch_two[:, 0]))


def test_shuffle_without_seed_draws_from_numpy_global_state():
    def epoch():
        return _all_windows(
            timeseries_dataset_from_array(np.arange(200), None, sequence_length=2, shuffle=True)
        )

    np.random.seed(5)
    first = epoch()
    np.random.seed(5)
    np.testing.assert_array_equal(first, epoch())


def test_unshuffled_order_stays_across_epochs():
    dataset = timeseries_dataset_from_array(np.arange(40), None, sequence_length=3, batch_size=8)
    first = np.concatenate(list(dataset))
    dataset.on_epoch_end()
    np.testing.assert_array_equal(first, np.concatenate(list(dataset)))
    np.testing.assert_array_equal(first[:, 0], np.arange(38))


def test_torch_dataloader_of_batches():
    data = np.arange(50, dtype="float32")
    dataset = timeseries_dataset_from_array(data, data * 2, sequence_length=4, batch_size=16)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None)
    batches = list(loader)
    assert len(batches) == len(dataset) == 3
    for index, (windows, targets) in enumerate(batches):
        assert isinstance(windows, torch.Tensor)
        expected_windows, expected_targets = dataset[index]
        np.testing.assert_array_equal(windows.numpy(), expected_windows)
        np.testing.assert_array_equal(targets.numpy(), expected_targets)


def test_accepts_a_tensor_without_copying_it():
    series = torch.arange(20.0)
    dataset = timeseries_dataset_from_array(series, None, sequence_length=5)
    assert np.shares_memory(dataset.data, series.numpy())
    np.testing.assert_array_equal(dataset[0][3], [3, 4, 5, 6, 7])


def test_windows_are_cut_per_batch_so_memory_stays_o_of_the_series():
    data = np.zeros((100_000, 4), dtype="float32")  # 1.6 MB; all 200-step windows: 318 MB
    tracemalloc.start()
    try:
        dataset = timeseries_dataset_from_array(data, None, sequence_length=200, batch_size=32)
        _, built_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        held, _ = tracemalloc.get_traced_memory()
        batch = dataset[len(dataset) // 2]
        _, batch_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(dataset, TimeseriesDataset) and dataset.data is data
    assert built_peak < 4 * data.nbytes  # the window starts, not the windows
    assert batch.shape == (32, 200, 4)
    assert batch_peak - held < 4 * batch.nbytes  # one batch's windows and their indices


def test_strided_views_are_read_in_place():
    wide = np.arange(50_000 * 6, dtype="float32").reshape(50_000, 6)
    data, targets = wide[:, ::2], wide[:, 1]  # views: columns 0, 2, 4 and column 1
    dataset = timeseries_dataset_from_array(
        data, targets, sequence_length=30, sampling_rate=2, batch_size=16
    )
    expected_windows, expected_targets = timeseries_dataset_from_array(
        data.copy(), targets.copy(), sequence_length=30, sampling_rate=2, batch_size=16
    )[9]
    tracemalloc.start()
    try:
        held, _ = tracemalloc.get_traced_memory()
        windows, batch_targets = dataset[9]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(windows, expected_windows)
    np.testing.assert_array_equal(batch_targets, expected_targets)
    assert peak - held < 4 * windows.nbytes  # no contiguous copy of the 600 KB series


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"start_index": -1}, "`start_index` must be 0 or greater"),
        ({"start_index": 100}, "`start_index` must be lower than the length"),
        ({"start_index": 20, "end_index": 20}, "`end_index` must be higher than `start_index`"),
        ({"end_index": 100}, "`end_index` must be lower than the length"),
        ({"end_index": -3}, "`end_index` must be higher than 0"),
        ({"sampling_rate": 0}, "`sampling_rate` must be higher than 0"),
        ({"sampling_rate": 100}, "`sampling_rate` must be lower than the length"),
        ({"sequence_stride": 0}, "`sequence_stride` must be higher than 0"),
        ({"sequence_stride": 100}, "`sequence_stride` must be lower than the length"),
        ({"sequence_length": 0}, "`sequence_length` must be higher than 0"),
        ({"batch_size": 0}, "`batch_size` must be higher than 0"),
        ({"seed": -1, "shuffle": True}, r"`seed` must be in \[0, 2\*\*32\)"),
    ],
)
def test_bad_arguments_raise_keras_value_errors(arguments, message):
    settings = {"sequence_length": 5, **arguments}
    with pytest.raises(ValueError, match=message):
        timeseries_dataset_from_array(np.arange(100), None, **settings)


@pytest.mark.parametrize("name", ["sequence_length", "sampling_rate", "batch_size", "seed"])
def test_non_integer_arguments_raise_type_errors(name):
    settings = {"sequence_length": 5, name: 2.5}
    with pytest.raises(TypeError, match=f"`{name}` must be an int"):
        timeseries_dataset_from_array(np.arange(100), None, **settings)


def test_targets_too_short_for_the_window_starts_raise():
    with pytest.raises(ValueError, match="`targets` has 15 steps, too few"):
        timeseries_dataset_from_array(
            np.arange(100), np.arange(15), sequence_length=5, start_index=10
        )


def test_scalar_data_raises():
    with pytest.raises(ValueError, match="`data` must have a time axis"):
        timeseries_dataset_from_array(np.float32(3.0), None, sequence_length=1)


def test_too_short_series_gives_an_empty_dataset_as_keras():
    dataset = timeseries_dataset_from_array(np.arange(10), None, sequence_length=20)
    assert len(dataset) == 0 and list(dataset) == []


def test_same_windows_and_shuffle_rule_as_keras_on_tensorflow():
    """Keras's own function (its `tf.data` version): identical unshuffled batches, and its
    shuffled windows follow the rule the shuffle test above checks here."""
    tensorflow = pytest.importorskip("tensorflow", reason="Keras's windows need TensorFlow")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    data = rng.normal(size=(300, 3)).astype("float32")
    targets = rng.normal(size=300).astype("float32")
    for settings in (
        {"sequence_length": 7, "sampling_rate": 3, "sequence_stride": 4, "batch_size": 16},
        {"sequence_length": 5, "start_index": 30, "end_index": 250, "batch_size": 33},
        {"sequence_length": 4, "sampling_rate": 2, "batch_size": None},
    ):
        expected = list(keras.utils.timeseries_dataset_from_array(data, targets, **settings))
        ours = timeseries_dataset_from_array(data, targets, **settings)
        assert len(ours) == len(expected)
        for index, (windows, batch_targets) in enumerate(expected):
            np.testing.assert_array_equal(ours[index][0], windows.numpy())
            np.testing.assert_array_equal(ours[index][1], batch_targets.numpy())
    shuffled = keras.utils.timeseries_dataset_from_array(
        np.arange(400), None, sequence_length=5, batch_size=2, shuffle=True, seed=42
    )
    first_steps = tensorflow.concat(list(shuffled), axis=0).numpy()[:, 0]
    keras_order = np.arange(396, dtype="int32")
    np.random.RandomState(42).shuffle(keras_order)
    assert np.all(np.argsort(keras_order)[first_steps] <= np.arange(396) + 15)

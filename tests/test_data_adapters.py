"""`fit`, `evaluate` and `predict` on every kind of data (training/data_adapters.py): each kind
gives the weights and results of the same data as arrays, in the same order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import rnnkit as rk
from rnnkit import layers
from rnnkit.data import PyDataset

BATCH = 8
SAMPLES = 36  # four full batches and one of four


def regression_data(samples: int = SAMPLES):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 5, 3)).astype("float32")
    return x, x.sum(axis=(1, 2))[:, None].astype("float32")


def gru_model(seed: int = 0):
    torch.manual_seed(seed)
    model = rk.Sequential([rk.Input(shape=(5, 3)), layers.GRU(4), layers.Dense(1)])
    model.compile(optimizer=rk.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


class NumpyDataset(Dataset):
    """One sample per item, as float64 NumPy (fit casts it to the model's float32)."""

    def __init__(self, x, y):
        self.x, self.y = x.astype("float64"), y.astype("float64")

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


class Batches(PyDataset):
    """Whole batches by index; records the calls fit makes."""

    def __init__(self, x, y, batch_size=BATCH):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.requested: list[int] = []
        self.epochs_begun = self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        self.requested.append(index)
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_begin(self):
        self.epochs_begun += 1

    def on_epoch_end(self):
        self.epochs_ended += 1


def batch_list(x, y):
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(x), BATCH)]


def as_kind(kind: str, x, y):
    """The data `(x, y)` as `kind`, in batches of BATCH in order."""
    if kind == "dataset":
        return NumpyDataset(x, y)
    if kind == "tensor_dataset":
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    if kind == "dataloader":
        return DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), BATCH)
    if kind == "pydataset":
        return Batches(x, y)
    if kind == "list":
        return batch_list(x, y)
    raise AssertionError(kind)


KINDS = ["dataset", "tensor_dataset", "dataloader", "pydataset", "list"]


def fit_arrays(epochs=2, **kwargs):
    x, y = regression_data()
    model = gru_model()
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, **kwargs)
    return model, history


def assert_same_weights(model, reference):
    for got, expected in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_evaluates_and_predicts_like_arrays(kind):
    x, y = regression_data()
    x_val, y_val = regression_data(samples=12)
    reference, reference_history = fit_arrays(validation_data=(x_val, y_val))
    model = gru_model()
    history = model.fit(
        as_kind(kind, x, y),
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        validation_data=as_kind(kind, x_val, y_val),
        verbose=0,
    )
    assert_same_weights(model, reference)
    assert list(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    for name, values in reference_history.history.items():
        np.testing.assert_allclose(history.history[name], values, rtol=1e-5)
    np.testing.assert_allclose(
        model.evaluate(as_kind(kind, x, y), batch_size=BATCH, verbose=0),
        reference.evaluate(x, y, batch_size=BATCH, verbose=0),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        model.predict(as_kind(kind, x, y), batch_size=BATCH, verbose=0),
        reference.predict(x, batch_size=BATCH, verbose=0),
        rtol=1e-5,
    )


def test_a_generator_with_steps_per_epoch_trains_like_arrays():
    x, y = regression_data(samples=32)
    model = gru_model()
    reference = gru_model()
    reference.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    endless = itertools.cycle(batch_list(x, y))
    history = model.fit(endless, epochs=3, steps_per_epoch=4, verbose=0)
    assert history.params["steps"] == 4
    assert_same_weights(model, reference)


def test_a_dataset_is_shuffled_in_the_order_arrays_are():
    x, y = regression_data()
    torch.manual_seed(5)
    reference = gru_model()
    torch.manual_seed(7)
    reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=True, verbose=0)
    model = gru_model()
    torch.manual_seed(7)
    model.fit(NumpyDataset(x, y), batch_size=BATCH, epochs=2, shuffle=True, verbose=0)
    assert_same_weights(model, reference)
    unshuffled = gru_model()
    unshuffled.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(unshuffled.get_weights()[0], model.get_weights()[0])


def test_a_pydataset_is_read_by_index_with_its_epoch_hooks():
    x, y = regression_data(samples=32)
    data = Batches(x, y)
    model = gru_model()
    model.fit(data, epochs=2, shuffle=False, verbose=0)
    assert data.requested == [0, 1, 2, 3] * 2
    assert (data.epochs_begun, data.epochs_ended) == (2, 2)
    data.requested.clear()
    torch.manual_seed(0)
    model.fit(data, epochs=2, shuffle=True, verbose=0)
    first, second = data.requested[:4], data.requested[4:]
    assert sorted(first) == sorted(second) == [0, 1, 2, 3]
    assert first != [0, 1, 2, 3] or second != [0, 1, 2, 3]


def test_an_iterable_dataset_is_batched_by_batch_size():
    x, y = regression_data()

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(zip(torch.from_numpy(x), torch.from_numpy(y)))

    reference, _ = fit_arrays(epochs=1)
    model = gru_model()
    model.fit(Stream(), batch_size=BATCH, epochs=1, verbose=0)
    assert_same_weights(model, reference)


def test_batches_move_to_the_model_and_take_its_float_dtype():
    x, y = regression_data(samples=16)
    model = gru_model().double()
    seen = []
    forward = model.forward
    model.forward = lambda batch, *args, **kwargs: seen.append(batch.dtype) or forward(batch)
    model.fit(NumpyDataset(x, y), batch_size=BATCH, verbose=0)
    model.fit(batch_list(x, y), verbose=0)
    assert set(seen) == {torch.float64}


def test_a_finite_generator_that_runs_out_stops_training_with_a_warning():
    x, y = regression_data(samples=32)
    model = gru_model()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        history = model.fit((batch for batch in batch_list(x, y)), epochs=3, verbose=0)
    assert history.epoch == [0]
    steps = []
    counter = rk.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(b))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(
            (batch for batch in batch_list(x, y)),
            epochs=3,
            steps_per_epoch=3,
            callbacks=[counter],
            verbose=0,
        )
    assert history.epoch == [0, 1] and steps == [0, 1, 2, 0]


def test_a_list_of_batches_runs_every_epoch_and_warns_when_steps_outrun_it():
    x, y = regression_data(samples=32)
    model = gru_model()
    history = model.fit(batch_list(x, y), epochs=3, verbose=0)
    assert history.epoch == [0, 1, 2]
    with pytest.warns(UserWarning, match="ran out after 1 of steps_per_epoch=3"):
        model.fit(DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), BATCH),
                  epochs=2, steps_per_epoch=3, verbose=0)  # fmt: skip


def test_validation_steps_and_a_generator_for_validation():
    x, y = regression_data(samples=32)
    model = gru_model()
    seen = []
    counter = rk.callbacks.LambdaCallback(on_test_batch_end=lambda b, logs: seen.append(b))
    history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[counter],
                        validation_data=itertools.cycle(batch_list(x, y)),
                        validation_steps=2)  # fmt: skip
    assert seen == [0, 1, 0, 1] and "val_loss" in history.history
    with pytest.raises(ValueError, match="`validation_data` is a generator.*validation_steps"):
        model.fit(x, y, epochs=2, verbose=0,
                  validation_data=(batch for batch in batch_list(x, y)))  # fmt: skip


# ------------------------------------------------------------------------------ bad input
def test_a_dataset_with_the_wrong_structure_is_named():
    x, y = regression_data(samples=16)
    model = gru_model()
    four = [(x[:8], y[:8], y[:8, 0], y[:8])]
    with pytest.raises(ValueError, match=r"`x` \(an iterable \(list\)\), batch 0, must be x, "
                                         r"\(x, y\) or \(x, y, sample_weight\); received a "
                                         r"tuple of 4 items"):  # fmt: skip
        model.fit(four, verbose=0)
    with pytest.raises(ValueError, match=r"batch 0, holds inputs only \(a Tensor of shape "
                                         r"\(8, 5, 3\)\); fit and evaluate need"):  # fmt: skip
        model.fit(DataLoader(TensorDataset(torch.from_numpy(x)), BATCH), verbose=0)
    with pytest.raises(TypeError, match="batch 0, is a dict"):
        model.fit(({"x": x, "y": y} for _ in range(1)), verbose=0)


def test_mismatched_batch_sizes_are_named():
    x, y = regression_data(samples=16)
    model = gru_model()
    with pytest.raises(ValueError, match=r"batch 1, has different numbers of samples: x 8, y 7"):
        model.fit([(x[:8], y[:8]), (x[8:], y[8:15])], verbose=0)
    with pytest.raises(ValueError, match="x 8, y 8, sample_weight 3"):
        model.fit([(x[:8], y[:8], np.ones(3))], verbose=0)


def test_targets_or_weights_beside_a_dataset_are_refused():
    x, y = regression_data(samples=16)
    model = gru_model()
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), BATCH)
    with pytest.raises(ValueError, match=r"`y` must be None when `x` is a DataLoader.*received "
                                         r"y as a ndarray of shape \(16, 1\)"):  # fmt: skip
        model.fit(loader, y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` must be None when `x` is a PyDataset"):
        model.fit(Batches(x, y), sample_weight=np.ones(16), verbose=0)
    weighted = [(x[:8], y[:8], np.ones(8, "float32"))]
    with pytest.raises(ValueError, match="`class_weight` cannot be combined with the sample "
                                         "weights that `x`"):  # fmt: skip
        model.fit(weighted, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="`validation_split` needs arrays"):
        model.fit(loader, validation_split=0.2, verbose=0)


def test_data_without_an_end_needs_steps():
    class Endless(PyDataset):
        def __getitem__(self, index):
            return np.ones((4, 5, 3), "float32"), np.ones((4, 1), "float32")

    model = gru_model()
    with pytest.raises(ValueError, match="`x` is a PyDataset without a length.*steps_per_epoch"):
        model.fit(Endless(), verbose=0)
    history = model.fit(Endless(), steps_per_epoch=2, epochs=2, verbose=0)
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="`x` yielded no batches"):
        model.evaluate(iter([]), verbose=0)
    with pytest.raises(ValueError, match="`x` yielded no batches: fit has nothing to train on"):
        model.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="`steps_per_epoch` must be a positive integer.*0"):
        model.fit(Endless(), steps_per_epoch=0, verbose=0)


def test_timeseries_windows_train_like_the_same_windows_as_arrays():
    rng = np.random.default_rng(2)
    series = rng.normal(size=(60, 3)).astype("float32")
    windows = rk.utils.timeseries_dataset_from_array(
        series[:-7], series[7:, :1], sequence_length=5, sampling_rate=2, batch_size=BATCH
    )
    x = np.stack([series[start : start + 10 : 2] for start in range(60 - 7 - 8)])
    y = series[7 : 7 + len(x), :1]
    reference = gru_model()
    reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    model = gru_model()
    model.fit(windows, validation_data=windows, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(model, reference)
    np.testing.assert_allclose(model.predict(windows, verbose=0), model.predict(x, verbose=0))


def test_a_pydataset_with_workers_prepares_batches_ahead_in_order():
    import threading

    x, y = regression_data()

    class Threaded(Batches):
        def __init__(self):
            super().__init__(x, y)
            self.workers, self.max_queue_size = 3, 2
            self.threads: set[str] = set()

        def __getitem__(self, index):
            self.threads.add(threading.current_thread().name)
            return super().__getitem__(index)

    reference, _ = fit_arrays()
    data = Threaded()
    model = gru_model()
    model.fit(data, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(model, reference)
    assert sorted(data.requested) == sorted([0, 1, 2, 3, 4] * 2)
    assert data.threads and all(name.startswith("rnnkit-pydataset") for name in data.threads)
    assert not any(t.name.startswith("rnnkit-pydataset") for t in threading.enumerate())
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # stops early: threads end too
    assert not any(t.name.startswith("rnnkit-pydataset") for t in threading.enumerate())


def test_evaluate_and_predict_take_steps_from_data_without_an_end():
    x, y = regression_data(samples=32)
    model = gru_model()
    endless = itertools.cycle(batch_list(x, y))
    logs = model.evaluate(endless, steps=2, return_dict=True, verbose=0)
    reference = model.evaluate(x[:16], y[:16], batch_size=BATCH, return_dict=True, verbose=0)
    assert logs == pytest.approx(reference)
    predictions = model.predict(endless, steps=3, verbose=0)  # continues the same generator
    following = np.concatenate([x[16:], x[:8]])  # batches 2, 3 and then 0 again
    np.testing.assert_allclose(predictions, model.predict(following, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"`y` must be None when `x` is a generator"):
        model.evaluate((b for b in batch_list(x, y)), y, verbose=0)

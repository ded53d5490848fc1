"""The fit / evaluate / predict engine on a tiny model that implements the loop's interface."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.training import Callback, LambdaCallback, loop, optimizers
from rnnkit.training.finite import NonFiniteLossError

os.environ.setdefault("KERAS_BACKEND", "jax")


class TinyModel(nn.Module):
    """A dense layer with the interface `rnnkit.training.loop` relies on; it records the inputs
    it sees in eval mode and counts constraint calls."""

    def __init__(self, features: int = 2, units: int = 1, activation=torch.sigmoid) -> None:
        super().__init__()
        self.dense = nn.Linear(features, units)
        self.activation = activation
        self.compiled = None
        self.stop_training = False
        self.losses: list[torch.Tensor] = []
        self.constraint_calls = 0
        self.seen_in_eval: list[torch.Tensor] = []

    def forward(self, x):
        if not self.training:
            self.seen_in_eval.append(x)
        return self.activation(self.dense(x))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        self.compiled = loop.compile(self, optimizer=optimizer, loss=loss, metrics=metrics)

    def apply_constraints(self):
        self.constraint_calls += 1

    def get_weights(self):
        return [p.detach().clone().numpy() for p in self.parameters()]

    def set_weights(self, weights):
        with torch.no_grad():
            for parameter, weight in zip(self.parameters(), weights):
                parameter.copy_(torch.as_tensor(weight))


def separable(samples: int = 256, seed: int = 0):
    """Points labelled by the side of a line: learnable by one dense unit."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 2)).astype("float32")
    return x, (x[:, 0] - 0.5 * x[:, 1] > 0).astype("float32")


def compiled_model(seed: int = 0, **compile_kwargs) -> TinyModel:
    torch.manual_seed(seed)
    model = TinyModel()
    compile_kwargs.setdefault("loss", "binary_crossentropy")
    compile_kwargs.setdefault("metrics", ["acc"])
    model.compile(**compile_kwargs)
    return model


def test_seeded_fit_learns_a_separable_problem():
    x, y = separable()
    model = compiled_model(optimizer=optimizers.Adam(learning_rate=0.05))
    history = loop.fit(model, x, y, epochs=10, batch_size=16, verbose=0)
    loss, acc = history.history["loss"], history.history["acc"]
    assert loss[-1] < 0.5 * loss[0]
    assert acc[-1] > acc[0] and acc[-1] > 0.9
    assert loop.evaluate(model, x, y, verbose=0)[1] > 0.9


def test_same_seed_same_history():
    x, y = separable()
    runs = []
    for _ in range(2):
        model = compiled_model(seed=3)
        torch.manual_seed(7)
        runs.append(loop.fit(model, x, y, epochs=3, verbose=0).history)
    assert runs[0] == runs[1]


def test_fit_matches_keras():
    """Two epochs, no shuffling, a partial last batch and a validation split: the running
    batch-weighted loss, the metrics and RMSprop follow Keras."""
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for fit")
    x, y = separable(samples=50, seed=1)
    reference = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    reference.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc", "mae"])
    model = compiled_model(metrics=["acc", "mae"])
    # (not reference.get_weights(): its np.array(variable) warns under NumPy 2)
    kernel, bias = (keras.ops.convert_to_numpy(w.value) for w in reference.weights)
    model.set_weights([kernel.T, bias])
    kwargs = {"epochs": 2, "batch_size": 16, "validation_split": 0.2, "shuffle": False}
    expected = reference.fit(x, y, verbose=0, **kwargs).history
    history = loop.fit(model, x, y, verbose=0, **kwargs).history
    assert list(history) == list(expected)
    for key in expected:
        np.testing.assert_allclose(history[key], expected[key], rtol=2e-5, err_msg=key)
    np.testing.assert_allclose(
        loop.evaluate(model, x, y, verbose=0),
        reference.evaluate(x, y, verbose=0),
        rtol=2e-5,
    )
    np.testing.assert_allclose(
        loop.predict(model, x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5
    )


def test_validation_split_takes_the_tail_before_shuffling():
    x, y = separable(samples=100)
    x[:, :] = np.arange(100, dtype="float32")[:, None]  # each row says which sample it is
    model = compiled_model()
    loop.fit(model, x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    validated = torch.cat(model.seen_in_eval)[:, 0].numpy()
    np.testing.assert_array_equal(validated, np.tile(np.arange(75, 100), 2))


def test_shuffle_reorders_every_epoch_and_false_keeps_order():
    x, y = separable(samples=12)
    x[:, 0] = np.arange(12)
    for shuffle in (True, False):
        orders = []
        recorder = LambdaCallback(
            on_epoch_begin=lambda epoch, logs, orders=orders: orders.append([])
        )
        model = compiled_model()
        forward = model.forward

        def record(batch, forward=forward, orders=orders):
            orders[-1].extend(batch[:, 0].int().tolist())
            return forward(batch)

        model.forward = record
        loop.fit(model, x, y, epochs=3, batch_size=5, shuffle=shuffle, callbacks=[recorder],
                 verbose=0)  # fmt: skip
        assert all(sorted(order) == list(range(12)) for order in orders)
        if shuffle:
            assert orders[0] != orders[1] != orders[2]
        else:
            assert orders == [list(range(12))] * 3


def test_history_keys_names_and_params():
    x, y = separable(samples=40)
    model = compiled_model(metrics=["acc", "mae"])
    history = loop.fit(model, x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    assert list(history.history) == ["acc", "loss", "mae", "val_acc", "val_loss", "val_mae"]
    assert all(len(values) == 2 for values in history.history.values())
    assert history.epoch == [0, 1]
    assert history.params == {"verbose": 0, "epochs": 2, "steps": 2}
    assert model.history is history and history.model is model
    accuracy = compiled_model(metrics=["accuracy"])
    keys = loop.fit(accuracy, x, y, validation_data=(x, y), verbose=0).history
    assert list(keys) == ["accuracy", "loss", "val_accuracy", "val_loss"]


def test_training_loss_is_the_running_mean_over_the_epoch():
    x, y = separable(samples=40)
    model = compiled_model(optimizer="sgd")
    batch_losses = []
    recorder = LambdaCallback(on_train_batch_end=lambda batch, logs: batch_losses.append(logs))
    history = loop.fit(model, x, y, batch_size=16, shuffle=False, callbacks=[recorder], verbose=0)
    assert [sorted(logs) for logs in batch_losses] == [["acc", "loss"]] * 3
    assert history.history["loss"] == [batch_losses[-1]["loss"]]
    assert batch_losses[0]["loss"] != batch_losses[-1]["loss"]


def test_keyboard_interrupt_returns_history_and_keeps_weights(capsys):
    x, y = separable(samples=64)
    model = compiled_model()
    events, weights_at_interrupt = [], []

    class Interrupt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if len(events) == 2 and batch == 1:  # epochs 0 and 1 done; 2nd batch of epoch 2
                weights_at_interrupt.extend(self.model.get_weights())
                raise KeyboardInterrupt

        def on_epoch_end(self, epoch, logs=None):
            events.append(f"end {epoch}")

        def on_train_end(self, logs=None):
            events.append("train_end")

    history = loop.fit(model, x, y, epochs=5, batch_size=16, callbacks=[Interrupt()], verbose=0)
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2
    assert events == ["end 0", "end 1", "train_end"]
    for kept, expected in zip(model.get_weights(), weights_at_interrupt):
        np.testing.assert_array_equal(kept, expected)
    assert model.training  # the mode it was in before fit
    assert "Training interrupted" in capsys.readouterr().out


@pytest.fixture
def sigint_handler(request):
    """SIGINT handled as `request.param` says for the test ("python": Python's own handler,
    which raises KeyboardInterrupt; "ignored"), whatever the test run was started with (a job
    started in the background of a script starts with SIGINT ignored)."""
    handler = {"python": signal.default_int_handler, "ignored": signal.SIG_IGN}[request.param]
    previous = signal.signal(signal.SIGINT, handler)
    yield request.param
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sigint_handler", ["python"], indirect=True)
def test_ctrl_c_during_an_optimizer_step_lets_the_step_finish(capsys, sigint_handler):
    finished_steps = []

    class SignalledSGD(torch.optim.SGD):
        def step(self, closure=None):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives in the middle of the step
            super().step(closure)
            finished_steps.append(True)

    x, y = separable(samples=32)
    model = compiled_model(optimizer=lambda parameters: SignalledSGD(parameters, lr=0.1))
    before = model.get_weights()
    history = loop.fit(model, x, y, epochs=3, batch_size=8, verbose=0)
    assert finished_steps == [True] and history.epoch == []
    assert not np.array_equal(model.get_weights()[0], before[0])  # the step was applied
    assert "Training interrupted (Ctrl-C) in epoch 1/3" in capsys.readouterr().out


@pytest.mark.parametrize("sigint_handler", ["ignored"], indirect=True)
def test_a_process_that_ignores_ctrl_c_trains_on_through_one(sigint_handler):
    class SignalledSGD(torch.optim.SGD):
        def step(self, closure=None):
            signal.raise_signal(signal.SIGINT)
            super().step(closure)

    x, y = separable(samples=32)
    model = compiled_model(optimizer=lambda parameters: SignalledSGD(parameters, lr=0.1))
    history = loop.fit(model, x, y, epochs=2, batch_size=8, verbose=0)
    assert history.epoch == [0, 1]
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # left as it was


def test_ragged_sequences_point_to_pad_sequences():
    model = compiled_model()
    with pytest.raises(ValueError, match=r"different lengths.*pad_sequences"):
        loop.fit(model, [[1, 2, 3], [4, 5]], [0, 1], verbose=0)
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1, 2, 3], [4]
    with pytest.raises(ValueError, match=r"lengths from 1 to 3.*pad_sequences"):
        loop.predict(model, ragged, verbose=0)


def test_mismatched_lengths_name_both_sizes():
    x, y = separable(samples=10)
    with pytest.raises(ValueError, match="x with 10 and y with 9"):
        loop.fit(compiled_model(), x, y[:9], verbose=0)


def test_lists_and_float64_become_tensors():
    model = compiled_model()
    history = loop.fit(model, [[0.0, 1.0], [1.0, 0.0]], [0, 1], verbose=0)
    assert len(history.history["loss"]) == 1
    prediction = loop.predict(model, np.ones((3, 2), dtype="float64"), verbose=0)
    assert prediction.shape == (3, 1) and prediction.dtype == np.float32


def test_evaluate_returns_list_dict_or_scalar():
    x, y = separable(samples=30)
    model = compiled_model(metrics=["acc", "mae"])
    loss, acc, mae = loop.evaluate(model, x, y, verbose=0)
    as_dict = loop.evaluate(model, x, y, return_dict=True, verbose=0)
    assert as_dict == {"acc": acc, "loss": loss, "mae": mae}
    predictions = loop.predict(model, x, verbose=0)[:, 0]
    assert acc == pytest.approx(np.mean((predictions > 0.5) == y))
    assert mae == pytest.approx(np.mean(np.abs(predictions - y)), rel=1e-5)
    assert isinstance(loop.evaluate(compiled_model(metrics=None), x, y, verbose=0), float)


def test_eval_mode_and_no_grad_outside_training():
    model = compiled_model()
    modes = []
    model.register_forward_hook(
        lambda module, inputs, output: modes.append((module.training, output.requires_grad))
    )
    x, y = separable(samples=8)
    loop.fit(model, x, y, batch_size=8, validation_data=(x, y), verbose=0)
    loop.predict(model, x, verbose=0)
    assert modes == [(True, True), (False, False), (False, False)]
    model.eval()
    loop.fit(model, x, y, batch_size=8, verbose=0)
    assert not model.training  # restored


def test_regularization_losses_are_added_and_constraints_applied():
    x, y = separable(samples=32)
    plain, regularized = compiled_model(optimizer="sgd"), compiled_model(optimizer="sgd")
    regularized.losses = [torch.tensor(0.25)]
    loss = loop.fit(plain, x, y, batch_size=8, shuffle=False, verbose=0).history["loss"][0]
    total = loop.fit(regularized, x, y, batch_size=8, shuffle=False, verbose=0).history["loss"]
    assert total[0] == pytest.approx(loss + 0.25)
    assert plain.constraint_calls == 4


def test_several_inputs_are_passed_as_a_list():
    class TwoInputs(TinyModel):
        def forward(self, inputs):
            first, second = inputs
            return super().forward(first + second)

    torch.manual_seed(0)
    model = TwoInputs()
    model.compile(loss="mse")
    x, y = separable(samples=20)
    history = loop.fit(model, [x, x], y, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert loop.predict(model, [x, x], verbose=0).shape == (20, 1)
    with pytest.raises(ValueError, match=r"same number of samples; received \[20, 19\]"):
        loop.predict(model, [x, x[:19]], verbose=0)


def test_steps_per_epoch_and_initial_epoch():
    x, y = separable(samples=40)
    model = compiled_model()
    batches = []
    counter = LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    # Keras: a pass over the data (4 batches) continues across epochs and, when it runs out,
    # ends the epoch early.
    with pytest.warns(UserWarning, match="ran out after 1 of steps_per_epoch=3"):
        history = loop.fit(model, x, y, batch_size=10, epochs=4, initial_epoch=2,
                           steps_per_epoch=3, callbacks=[counter], verbose=0)  # fmt: skip
    assert history.epoch == [2, 3]
    assert history.params["steps"] == 3
    assert batches == [0, 1, 2, 0]
    batches.clear()
    loop.fit(model, x, y, batch_size=10, epochs=2, steps_per_epoch=2, callbacks=[counter],
             verbose=0)  # fmt: skip
    assert batches == [0, 1, 0, 1]


def test_lazily_built_model_gets_its_optimizer_on_the_first_step():
    class Lazy(TinyModel):
        def __init__(self):
            super().__init__()
            del self.dense

        def forward(self, x):
            if not hasattr(self, "dense"):
                self.dense = nn.Linear(x.shape[-1], 1)
            return super().forward(x)

    model = Lazy()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="no weights yet"):
        model.compiled.optimizer  # noqa: B018
    x, y = separable(samples=16)
    loop.fit(model, x, y, verbose=0)
    assert model.compiled.optimizer.param_groups[0]["params"][0] is model.dense.weight


def test_compiled_config_round_trip():
    model = compiled_model(optimizer="adam", metrics=["acc", lambda y_true, y_pred: y_pred])
    x, y = separable(samples=16)
    loop.fit(model, x, y, verbose=0)
    config = model.compiled.get_config()
    assert config["loss"] == "binary_crossentropy"
    assert config["metrics"] == ["acc"]
    assert config["optimizer"]["class_name"] == "Adam"
    again = loop.compile(model, **config)
    assert again.optimizer.rule.get_config() == model.compiled.optimizer.rule.get_config()


def test_argument_errors():
    x, y = separable(samples=10)
    model = compiled_model()
    with pytest.raises(ValueError, match="validation_split=1.5"):
        loop.fit(model, x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="too few to split"):
        loop.fit(model, x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match=r"\(x_val, y_val, sample_weight_val\) or a dataset"):
        loop.fit(model, x, y, validation_data=(x, y, y, y), verbose=0)
    with pytest.raises(ValueError, match="verbose=3"):
        loop.fit(model, x, y, verbose=3)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer; received 0"):
        loop.fit(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="one output; this model returned 2"):
        model.forward = lambda batch: (batch, batch)
        loop.fit(model, x, y, verbose=0)
    uncompiled = TinyModel()
    with pytest.raises(ValueError, match="needs a loss"):
        loop.fit(uncompiled, x, y, verbose=0)


def test_validation_freq_validates_after_the_epochs_it_names():
    x, y = separable(samples=40)
    model = compiled_model()
    validated = []
    counter = LambdaCallback(on_test_begin=lambda logs: validated.append(True))
    epochs_logged = LambdaCallback(on_epoch_end=lambda epoch, logs: validated.append(sorted(logs)))
    history = loop.fit(model, x, y, epochs=4, validation_data=(x, y), validation_freq=2,
                       callbacks=[counter, epochs_logged], verbose=0)  # fmt: skip
    assert len(history.history["val_loss"]) == 2 and len(history.history["loss"]) == 4
    assert validated[0] == ["acc", "loss"]  # epoch 1: no validation
    assert validated[1:3] == [True, ["acc", "loss", "val_acc", "val_loss"]]
    history = loop.fit(model, x, y, epochs=5, initial_epoch=1, validation_split=0.25,
                       validation_freq=[1, 3, 5], verbose=0)  # fmt: skip
    assert history.epoch == [1, 2, 3, 4] and len(history.history["val_loss"]) == 2
    for bad in (0, "2", 1.5):
        with pytest.raises(
            ValueError, match="`validation_freq` must be a positive integer or a list"
        ):
            loop.fit(model, x, y, validation_data=(x, y), validation_freq=bad, verbose=0)


_INTERRUPTED_FIT = textwrap.dedent(
    """
    import signal
    import numpy as np
    import rnnkit as rk
    from rnnkit import layers

    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5, 3)), rng.normal(size=(64, 1))

    def new_model():  # no Input: the first step builds the weights, then the optimizer
        model = rk.Sequential([layers.LSTM(4), layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model

    model = new_model()
    print("ready", flush=True)
    try:
        model.fit(x, y, epochs=50, batch_size=8, verbose=0)
    except KeyboardInterrupt:
        pass  # before fit's own handling began: what matters is what comes next
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    history = new_model().fit(x, y, epochs=1, batch_size=8, verbose=0)
    print("trained", len(history.epoch), flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.4, 1.0])
def test_ctrl_c_at_any_moment_of_the_first_fit_leaves_the_process_able_to_train(delay):
    """Ctrl-C from the first 100 ms of a process's first fit on (while the first step builds
    the weights, the optimizer and the modules torch imports for it) never breaks what comes
    after: the interrupted model and a new one both train."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_FIT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "trained 1" in stdout


class WeightsAtEachBatch(Callback):
    """Records the weights and the optimizer's step count as each batch begins."""

    def __init__(self):
        super().__init__()
        self.weights, self.optimizer_steps = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append(self.model.get_weights())
        state = self.model.compiled.optimizer.state_dict()["state"]
        self.optimizer_steps.append([float(s["step"]) for s in state.values()])


def poisoned(where: str, value: float = np.nan):
    x, y = separable(samples=32)
    (x if where == "x" else y)[13] = value  # in the second batch of 8, without shuffling
    return x, y


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (
            "x",
            np.nan,
            r"loss is NaN or inf at epoch 1, batch 2, .*the inputs \(x\) hold 2 NaN or inf values",
        ),
        ("y", np.inf, r"epoch 1, batch 2, .*the targets \(y\) hold 1 NaN or inf value\b"),
    ],
)
def test_a_nan_batch_stops_fit_before_it_touches_the_weights(where, value, message):
    x, y = poisoned(where, value)
    model = compiled_model(optimizer="adam")
    recorder = WeightsAtEachBatch()
    with pytest.raises(NonFiniteLossError, match=message):
        loop.fit(
            model, x, y, epochs=2, batch_size=8, shuffle=False, callbacks=[recorder], verbose=0
        )
    after = model.get_weights()
    assert len(recorder.weights) == 2  # stopped in the second batch
    for got, before_bad_batch in zip(after, recorder.weights[1]):
        np.testing.assert_array_equal(got, before_bad_batch)
    state = model.compiled.optimizer.state_dict()["state"]
    assert [float(s["step"]) for s in state.values()] == [1.0, 1.0]  # only the first batch


def test_a_diverged_model_is_told_apart_from_bad_data():
    x, y = separable(samples=16)
    model = compiled_model(optimizer="sgd")
    model.set_weights([np.full((1, 2), 1e30, "float32"), np.zeros(1, "float32")])
    model.activation = lambda z: z  # no sigmoid: the squared error of 1e30 overflows
    model.compiled = loop.compile(model, optimizer="sgd", loss="mse")
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 1, .*the model diverged"):
        loop.fit(model, x, y, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], np.full((1, 2), 1e30, "float32"))


def test_skip_nonfinite_batches_skips_and_counts_them():
    x, y = poisoned("x")
    model = compiled_model(optimizer="adam")
    with pytest.warns(RuntimeWarning, match=r"skipped 2 batches .*NaN or inf.*epoch 1, batch 2"):
        history = loop.fit(
            model, x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
            skip_nonfinite_batches=True,
        )  # fmt: skip
    assert history.epoch == [0, 1]
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(history.history["loss"]).all()  # the skipped batches are not averaged in
    state = model.compiled.optimizer.state_dict()["state"]
    assert [float(s["step"]) for s in state.values()] == [6.0, 6.0]  # 8 batches, 2 skipped


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"epochs": 2.5}, TypeError, "`epochs` must be an integer, received 2.5"),
        ({"epochs": "2"}, TypeError, "`epochs` must be an integer, received '2'"),
        ({"epochs": None}, TypeError, "`epochs` must be an integer, received None"),
        ({"epochs": -1}, ValueError, "`epochs` must be >= 0, received -1"),
        ({"epochs": 2, "initial_epoch": 3}, ValueError, r"`initial_epoch` \(3\) .*`epochs` \(2\)"),
        ({"steps_per_epoch": -1}, ValueError, "`steps_per_epoch` must be a positive integer"),
        ({"steps_per_epoch": 0}, ValueError, "`steps_per_epoch` must be a positive integer"),
        ({"steps_per_epoch": 1.5}, TypeError, "`steps_per_epoch` must be an integer or None"),
        ({"validation_split": "0.2"}, TypeError, "`validation_split` must be a float"),
        ({"initial_epoch": 1.0}, TypeError, "`initial_epoch` must be an integer"),
    ],
)
def test_bad_fit_arguments_name_the_argument(arguments, error, message):
    x, y = separable(samples=16)
    model = compiled_model()
    before = model.get_weights()
    with pytest.raises(error, match=message):
        loop.fit(model, x, y, verbose=0, **arguments)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_numpy_integers_and_a_single_callback_are_accepted_as_in_keras():
    x, y = separable(samples=16)
    model = compiled_model()
    seen = []
    callback = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    history = loop.fit(
        model, x, y, epochs=np.int64(2), batch_size=np.int64(8), steps_per_epoch=np.int32(2),
        callbacks=callback, verbose=0,
    )  # fmt: skip
    assert history.epoch == [0, 1] and seen == [0, 1]


def test_a_dataframe_with_a_text_column_names_the_column():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [0.1, 0.2, 0.3, 0.4], "city": ["x", "y", "z", "w"]})
    model = compiled_model()
    with pytest.raises(
        TypeError, match="`x` column 'city' holds (object|str) values; fit needs numbers"
    ):
        loop.fit(model, frame, np.zeros(4, "float32"), verbose=0)


def test_a_numeric_dataframe_trains_as_arrays():
    pandas = pytest.importorskip("pandas")
    x, y = separable(samples=16)
    frame = pandas.DataFrame({"a": x[:, 0], "b": x[:, 1]})
    history = loop.fit(compiled_model(), frame, y, epochs=1, batch_size=8, verbose=0)
    assert history.epoch == [0]

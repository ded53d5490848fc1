"""Progress output: Keras's format, a live bar on terminals, one line per epoch elsewhere."""

from __future__ import annotations

import io
import re
import types

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.training import Callback, Progbar, ProgbarLogger, loop, progress


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(2, 1)
        self.compiled = loop.compile(self, "rmsprop", "binary_crossentropy", ["acc"])
        self.stop_training = False

    def forward(self, x):
        return torch.sigmoid(self.dense(x))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


X = np.random.default_rng(0).normal(size=(40, 2)).astype("float32")
Y = (X[:, 0] > 0).astype("float32")
SUMMARY = re.compile(
    r"^4/4 ━{20} \d+s \d+(s|ms|us)/step - acc: \d\.\d{4} - loss: \d\.\d{4}"
    r" - val_acc: \d\.\d{4} - val_loss: \d\.\d{4}$"
)


def test_verbose_1_to_a_non_terminal_writes_one_line_per_epoch(capsys):
    torch.manual_seed(0)
    loop.fit(TinyModel(), X, Y, epochs=2, batch_size=8, validation_split=0.2, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    assert len(lines) == 4 and all(SUMMARY.match(line) for line in lines[1::2]), out


def test_verbose_1_on_a_terminal_redraws_in_place():
    stream = Terminal()
    logger = ProgbarLogger(stream=stream)
    logger.set_params({"verbose": 1, "epochs": 1, "steps": 4})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for batch in range(4):
        logger.progbar._last_update = 0.0  # let every update draw
        logger.on_train_batch_end(batch, {"acc": 0.5, "loss": 0.25})
    logger.on_epoch_end(0, {"acc": 0.5, "loss": 0.25, "val_acc": 0.75, "val_loss": 0.125})
    out = stream.getvalue()
    assert "Epoch" not in out  # one epoch: no header, as in Keras
    assert out.count("\r") == 5 and out.endswith("\n") and out.count("\n") == 1
    assert "\x1b[1m2/4\x1b[0m" in out and "\x1b[32m" in out  # bold count, green bar
    final = re.sub(r"\x1b\[\d+m", "", out.split("\r")[-1])
    assert re.match(r"4/4 ━{20} \d+s \d+\w+/step - acc: 0.5000 - loss: 0.2500 - val_acc: 0.7500"
                    r" - val_loss: 0.1250\s*\n$", final)  # fmt: skip


def test_verbose_2_writes_keras_epoch_lines(capsys):
    torch.manual_seed(0)
    loop.fit(TinyModel(), X, Y, epochs=2, batch_size=8, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    for line in lines[1::2]:
        assert re.match(
            r"^5/5 - \d+s - \d+(s|ms|us)/step - acc: \d\.\d{4} - loss: \d\.\d{4}$", line
        )


def test_verbose_0_is_silent(capsys):
    model = TinyModel()
    loop.fit(model, X, Y, epochs=2, verbose=0)
    loop.evaluate(model, X, Y, verbose=0)
    loop.predict(model, X, verbose=0)
    assert capsys.readouterr().out == ""


def test_evaluate_and_predict_show_one_line(capsys):
    model = TinyModel()
    loop.evaluate(model, X, Y, batch_size=16, verbose=1)
    loop.predict(model, X, batch_size=16, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.match(r"^3/3 ━{20} \d+s \S+/step - acc: \d\.\d{4} - loss: \d\.\d{4}$", lines[0])
    assert re.match(r"^3/3 ━{20} \d+s \S+/step$", lines[1])


def test_value_formatting_and_unknown_target():
    stream = io.StringIO()
    bar = Progbar(None, verbose=1, stream=stream)
    bar.update(3, [("loss", 0.0000123), ("acc", 0.5)], finalize=True)
    assert stream.getvalue().startswith("      3/Unknown ")
    assert stream.getvalue().rstrip().endswith("- loss: 1.2300e-05 - acc: 0.5000")


def test_interrupted_bar_line_is_closed():
    stream = Terminal()

    class Interrupt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    model = TinyModel()
    loop.fit(model, X, Y, epochs=2, batch_size=8, callbacks=[Interrupt(), ProgbarLogger(stream)])
    assert stream.getvalue().endswith("\n")


class FakeDisplays:
    """IPython's `display(..., display_id=True)` and its handle's `update`, recorded."""

    def __init__(self) -> None:
        self.shown: list[list[str]] = []  # per display: every text it showed, in order

    def display(self, obj, display_id=False):
        assert display_id is True
        texts = [obj.data]
        self.shown.append(texts)
        return types.SimpleNamespace(update=lambda new: texts.append(new.data))


@pytest.fixture
def in_a_notebook(monkeypatch):
    ipython_display = pytest.importorskip("IPython.display")
    fake = FakeDisplays()
    monkeypatch.setattr(ipython_display, "display", fake.display)
    monkeypatch.setattr(progress, "in_jupyter_kernel", lambda: True)
    return fake


def test_in_a_notebook_each_epoch_is_one_display_updated_in_place(in_a_notebook, capsys):
    torch.manual_seed(0)
    loop.fit(TinyModel(), X, Y, epochs=2, batch_size=8, validation_split=0.2, verbose=1)
    assert capsys.readouterr().out == ""  # nothing printed as text lines
    assert len(in_a_notebook.shown) == 2
    for epoch, texts in enumerate(in_a_notebook.shown, start=1):
        header, bar = texts[-1].splitlines()  # what the saved notebook keeps
        assert header == f"Epoch {epoch}/2"
        assert SUMMARY.match(bar) and "\x1b[" not in bar


def test_in_a_notebook_a_stream_of_ones_own_keeps_the_text_output(in_a_notebook):
    stream = io.StringIO()
    logger = ProgbarLogger(stream=stream)
    logger.set_params({"verbose": 1, "epochs": 2, "steps": 4})
    logger.on_epoch_begin(0)
    logger.on_epoch_end(0, {"acc": 0.5, "loss": 0.25})
    assert in_a_notebook.shown == []
    assert stream.getvalue().splitlines()[0] == "Epoch 1/2"


def test_ipykernel_imported_outside_a_kernel_is_not_a_notebook():
    pytest.importorskip("ipykernel")  # imported, as nbclient's tests do, but no kernel runs
    assert not progress.in_jupyter_kernel()
    assert not Progbar(4, verbose=1).uses_display()

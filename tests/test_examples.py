"""The chapter's programs in examples/ run (shortened with RNNKIT_EXAMPLES_QUICK=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, env=None):
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "RNNKIT_EXAMPLES_QUICK": "1", **(env or {})},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_textbook_loop_agrees_with_the_layer():
    output = run_example("textbook_loop.py")
    differences = [float(line.split("=")[-1]) for line in output.splitlines() if "max |" in line]
    assert len(differences) == 2 and max(differences) < 1e-12


def test_simple_rnn_shapes():
    output = run_example("simple_rnn_shapes.py")
    assert "(None, None, 32)" in output and "(None, 32)" in output
    assert "symbolic output shape: (None, None, 16)" in output
    assert "on real data: (2, 120, 16)" in output


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
def test_imdb_sentiment(kind, sentiment_imdb, tmp_path):
    output = run_example(
        "imdb_sentiment.py",
        kind,
        env={"RNNKIT_IMDB_PATH": str(sentiment_imdb), "RNNKIT_OUT": str(tmp_path)},
    )
    assert "input_train shape: (200, 500)" in output
    assert "test accuracy:" in output
    assert (tmp_path / f"imdb_{kind}_curves.png").exists()


def test_forecasting(jena_csv, tmp_path):
    output = run_example(
        "forecasting.py",
        env={"RNNKIT_JENA_PATH": str(jena_csv(rows=10000)), "RNNKIT_OUT": str(tmp_path)},
    )
    assert "samples shape: (256, 120, 14)" in output and "targets shape: (256,)" in output
    assert "(common-sense baseline)" in output
    for name in ("gru", "gru_dropout", "stacked_gru", "bidirectional_lstm"):
        assert f"{name}: test MAE" in output
        assert (tmp_path / f"jena_{name}.rnnkit").exists()
        assert (tmp_path / f"jena_{name}_curves.png").exists()

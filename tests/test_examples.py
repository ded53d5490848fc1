"""The chapter's programs in examples/ run (shortened with RNNKIT_EXAMPLES_QUICK=1), and so do
their notebook twins (examples/*.ipynb, built by examples/build_notebooks.py) in a Jupyter
kernel."""

from __future__ import annotations

import importlib.util
import os
import re
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


def _build_notebooks():
    """examples/build_notebooks.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", EXAMPLES / "build_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(notebook):
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_the_notebooks_match_their_scripts():
    nbformat = pytest.importorskip("nbformat")
    build = _build_notebooks()
    assert sorted(path.name for path in EXAMPLES.glob("*.ipynb")) == sorted(
        build.notebook_path(name).name for name in build.SCRIPTS
    )
    for name in build.SCRIPTS:
        saved = nbformat.read(build.notebook_path(name), as_version=4)
        assert _cells(saved) == _cells(build.notebook(EXAMPLES / name)), (
            f"{name} changed: run `python examples/build_notebooks.py`"
        )
        assert all(not cell.get("outputs") for cell in saved.cells)  # saved without outputs


def _execute(name, folder, monkeypatch, sentiment_imdb):
    """Runs examples/NAME.ipynb in a Jupyter kernel in `folder`, shortened as the scripts are."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("RNNKIT_EXAMPLES_QUICK", "1")
    monkeypatch.setenv("RNNKIT_IMDB_PATH", str(sentiment_imdb))
    monkeypatch.setenv("RNNKIT_OUT", str(folder))
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    client.execute()
    return notebook


def _outputs(notebook, kind):
    return [o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == kind]


def _text(notebook):
    return "".join(o.text for o in _outputs(notebook, "stream"))


def test_the_imdb_notebook_shows_the_summary_and_one_progress_display_per_epoch(
    tmp_path, monkeypatch, sentiment_imdb
):
    notebook = _execute("imdb_sentiment.ipynb", tmp_path, monkeypatch, sentiment_imdb)
    assert "Param #" in _text(notebook) and "Total params" in _text(notebook)
    displays = [o.data["text/plain"] for o in _outputs(notebook, "display_data")]
    # Two epochs: two outputs, each the header and the epoch's final bar, updated in place.
    assert len(displays) == 2, displays
    for epoch, display in enumerate(displays, start=1):
        header, bar = display.splitlines()
        assert header == f"Epoch {epoch}/2"
        assert re.match(r"^\d+/\d+ ━{20} \d+s .* - val_loss: \d\.\d{4}$", bar), bar
    # No bar printed as text: no carriage returns, no "4/4 ━━━" lines in the stream output.
    assert "\r" not in _text(notebook)
    assert not re.search(r"^\s*\d+/\d+ ━", _text(notebook), flags=re.MULTILINE)
    assert "test accuracy:" in _text(notebook)
    assert (tmp_path / "imdb_simple_rnn_curves.png").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("textbook_loop.ipynb", "max |textbook loop"), ("simple_rnn_shapes.ipynb", "Param #")],
)
def test_the_other_notebooks_run(name, expected, tmp_path, monkeypatch, sentiment_imdb):
    notebook = _execute(name, tmp_path, monkeypatch, sentiment_imdb)
    assert expected in _text(notebook)
    assert not _outputs(notebook, "error")

"""The command line: `rnnkit train charlm|imdb` writes its outputs; bad options exit 2."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import rnnkit as rk
from rnnkit.cli import main

TINY = ["--epochs", "1", "--units", "8", "--maxlen", "10", "--batch-size", "64"]


def test_train_charlm_on_a_tiny_corpus_writes_model_history_and_curves(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 80)
    out = tmp_path / "run"
    stream = io.StringIO()
    code = main(
        ["train", "charlm", "--data", str(corpus), "--sample-length", "20", "--out", str(out),
         "--verbose", "0", *TINY],
        stream=stream,
    )  # fmt: skip
    text = stream.getvalue()
    assert code == 0
    assert "validation bits per character:" in text
    for name in ("model.rnnkit", "history.csv", "curves.png"):
        assert (out / name).exists()
        assert "wrote" in text and str(out / name) in text
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header.split(",") == ["epoch", "acc", "loss", "val_acc", "val_loss"]
    model = rk.load_model(out / "model.rnnkit")
    assert model.layers[1].__class__.__name__ == "LSTM"


def test_train_imdb_from_a_local_file(tmp_path, sentiment_imdb):
    stream = io.StringIO()
    code = main(
        ["train", "imdb", "--data", str(sentiment_imdb), "--layer", "gru", "--num-words", "300",
         "--out", str(tmp_path / "imdb"), "--verbose", "0", *TINY],
        stream=stream,
    )  # fmt: skip
    assert code == 0
    assert "test accuracy:" in stream.getvalue()
    assert (tmp_path / "imdb" / "model.rnnkit").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "charlm", "--units", "-3"],
        ["train", "poetry"],
        ["train", "imdb", "--layer", "transformer"],
        ["train", "charlm", "--bogus"],
    ],
)
def test_bad_options_give_one_line_and_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rnnkit") and "error:" in error
    assert len(error.splitlines()) == 1


def test_missing_data_file_is_a_one_line_error(tmp_path, capsys):
    code = main(["train", "imdb", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path)])
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_python_dash_m_runs_the_cli():
    completed = subprocess.run(
        [sys.executable, "-m", "rnnkit", "train", "--help"], capture_output=True, text=True
    )
    assert completed.returncode == 0 and "charlm" in completed.stdout


def test_a_binary_data_file_is_refused_before_training(tmp_path, capsys):
    binary = tmp_path / "program"
    binary.write_bytes(bytes(range(256)) * 64)
    code = main(["train", "charlm", "--data", str(binary), "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "is not a text file" in error and str(binary) in error
    assert not (tmp_path / "run" / "model.rnnkit").exists()


def test_a_second_run_into_the_same_folder_says_it_replaces_the_first(tmp_path):
    from rnnkit.tasks.common import output_paths

    first, second = io.StringIO(), io.StringIO()
    paths = output_paths(str(tmp_path / "run"), first)
    assert first.getvalue() == ""
    (tmp_path / "run" / "model.rnnkit").write_bytes(b"an earlier model")
    assert output_paths(str(tmp_path / "run"), second) == paths
    assert "holds an earlier run's outputs; this run replaces them" in second.getvalue()

"""The command line: `rnnkit train charlm|imdb` writes its outputs; each bad path or option is
one line on stderr and exit code 2; `--help` answers without importing PyTorch."""

from __future__ import annotations

import io
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import rnnkit as rk
from rnnkit import bench
from rnnkit.cli import CELLS, main

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
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rnnkit") and "error:" in error
    assert len(error.splitlines()) == 1


@pytest.fixture
def a_file_and_a_folder(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_folder").mkdir()
    return tmp_path


# (arguments, what the one line must say): each names the option as the user typed it.
BAD_COMMAND_LINES = [
    (["train", "charlm", "--out", "a_file"], ["--out", "'a_file' is a file"]),
    (["train", "charlm", "--out", "a_file/run"], ["--out", "a_file", "which is a file"]),
    (["explain", "vanishing", "--out", "a_file"], ["--out", "'a_file' is a file"]),
    (["bench", "--out", "a_file"], ["--out", "'a_file' is a file"]),
    (["train", "imdb", "--data", "a_folder"], ["--data", "'a_folder' is a folder"]),
    (["train", "imdb", "--data", "missing.npz"], ["--data", "no file at 'missing.npz'"]),
    (["train", "charlm", "--units", "abc"], ["--units", "expected an integer", "'abc'"]),
    (["train", "charlm", "--seed", "x"], ["--seed", "expected an integer"]),
    (["explain", "vanishing", "--lengths", "1"], ["--lengths", ">= 2"]),
    (["bench", "--cells", "rnn"], ["--cells", "invalid choice"]),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_COMMAND_LINES)
def test_each_bad_path_or_option_is_one_line_on_stderr_with_exit_code_2(
    argv, expected, a_file_and_a_folder
):
    completed = subprocess.run(
        [sys.executable, "-m", "rnnkit", *argv],
        capture_output=True,
        text=True,
        cwd=a_file_and_a_folder,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("rnnkit") and "error:" in lines[0]
    assert "Traceback" not in completed.stderr and "_positive_int" not in completed.stderr
    for text in expected:
        assert text in lines[0]


def test_bad_out_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "a_file").write_text("kept")
    code = main(["train", "charlm", "--out", str(tmp_path / "a_file"), "--epochs", "1"])
    assert code == 2
    assert "--out" in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "kept"


def test_a_text_too_short_for_maxlen_names_the_option(tmp_path, capsys):
    corpus = tmp_path / "short.txt"
    corpus.write_text("a short text, " * 3)
    code = main(["train", "charlm", "--data", str(corpus), "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "--maxlen 40" in error and "seq_len" not in error


def test_a_failed_download_tells_a_cli_user_to_pass_data(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    code = main(["train", "imdb", "--out", str(tmp_path / "run")], stream=io.StringIO())
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "--data" in error and "path=" not in error
    assert "no network here" in error and str(tmp_path / "home") in error


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rnnkit {rk.__version__}"


def test_help_shows_the_defaults(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: lstm)" in text and "(default: out)" in text
    assert "(default: charlm 128, imdb 32, forecast 16)" in text  # --units, per task
    assert "(default: charlm 40, imdb 500)" in text  # --maxlen: not a forecast option
    assert main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 25 50 100 200)" in text and "(default: 1000)" in text


def test_bench_cells_are_the_benchmarks_cells():
    # The CLI keeps its own list so that building the parser imports no PyTorch.
    assert set(CELLS) == set(bench.GATES)


HELP_AND_ERRORS_WITHOUT_TORCH = """
import sys
from rnnkit.cli import main
codes = [main(argv) for argv in (["--help"], ["train", "--help"], ["explain", "--help"],
         ["bench", "--help"], ["--version"], ["train", "charlm", "--units", "abc"],
         ["train", "imdb", "--data", "missing.npz"])]
print(codes, sorted(name for name in ("torch", "numpy", "rnnkit.layers") if name in sys.modules))
"""


def test_help_and_option_errors_do_not_import_torch(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", HELP_AND_ERRORS_WITHOUT_TORCH],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert completed.stdout.splitlines()[-1] == "[0, 0, 0, 0, 0, 2, 2] []"


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

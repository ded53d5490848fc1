"""Atomic writes and their temporary files (rnnkit._files), through every writer that uses them;
kill -9 during saves; corrupted model files give a clear error or the saved weights, never
other ones."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import _files, layers


def small_model():
    model = rk.Sequential([rk.Input(shape=(None, 3)), layers.LSTM(4), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def save_model(model, path):
    model.save(path)


def save_weights(model, path):
    rk.io.save_weights(model, path)


def export_onnx(model, path):
    rk.io.export_onnx(model, path, np.zeros((1, 5, 3), dtype=np.float32))


WRITERS = {"model": (save_model, "m.rnnkit"), "weights": (save_weights, "m.weights.h5")}
if rk.io.onnx_export.importlib.util.find_spec("onnx") is not None:
    WRITERS["onnx"] = (export_onnx, "m.onnx")


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".rnnkit-"))


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_new_file_gets_the_umasks_permissions_and_an_old_one_keeps_its_own(
    writer, tmp_path, umask_022
):
    write, name = WRITERS[writer]
    path = tmp_path / name
    write(small_model(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as open(path, "w") would make it
    path.chmod(0o640)
    write(small_model(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_saving_onto_a_folder_or_under_a_file_names_the_target(writer, tmp_path):
    write, name = WRITERS[writer]
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=f"Is a directory.*{folder}'"):
        write(small_model(), folder)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"Not a directory.*{a_file / name}'"):
        write(small_model(), a_file / name)
    assert temporaries(tmp_path) == [] and temporaries(folder) == []


def test_a_read_only_filesystem_names_the_target(tmp_path, monkeypatch):
    path = tmp_path / "m.rnnkit"

    def read_only(name, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), name)

    monkeypatch.setattr(_files.os, "open", read_only)
    with pytest.raises(OSError, match=f"Read-only file system: '{path}'") as caught:
        small_model().save(path)
    assert ".rnnkit-" not in str(caught.value)


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with _files.atomic_write(path) as temporary:
            with open(temporary, "wb") as file:
                file.write(b"half")
            raise RuntimeError("disk on fire")
    assert path.read_bytes() == b"old"
    assert temporaries(tmp_path) == []


def test_an_error_inside_the_writer_naming_the_temporary_is_reworded(tmp_path):
    path = tmp_path / "m.bin"
    with pytest.raises(OSError, match=f"Cannot write '{path}': no room") as caught:
        with _files.atomic_write(path) as temporary:
            raise OSError(f"no room for {temporary}")
    assert ".rnnkit-" not in str(caught.value)


def test_stale_temporaries_of_killed_saves_are_removed_and_nothing_else(tmp_path):
    hours_ago = time.time() - 7200
    stale = [".rnnkit-abcdefgh.tmp", ".rnnkit-0123456789abcdef.tmp", ".rnnkit-k3j_x9q2.h5"]
    fresh = ".rnnkit-fedcba9876543210.tmp"  # a save that may still be running
    foreign = [".other-abcdefgh.tmp", "rnnkit-abcdefgh.tmp", ".rnnkit-abcdefgh.tmp.keep"]
    for name in [*stale, fresh, *foreign]:
        (tmp_path / name).write_bytes(b"x")
        if name != fresh:
            os.utime(tmp_path / name, (hours_ago, hours_ago))
    (tmp_path / ".rnnkit-folder1234.tmp").mkdir()
    os.utime(tmp_path / ".rnnkit-folder1234.tmp", (hours_ago, hours_ago))
    small_model().save(tmp_path / "m.rnnkit")
    left = sorted(os.listdir(tmp_path))
    assert left == sorted([fresh, *foreign, ".rnnkit-folder1234.tmp", "m.rnnkit"])


_SAVE_LOOP = textwrap.dedent(
    """
    import sys
    import rnnkit as rk
    from rnnkit import layers

    model = rk.Sequential([rk.Input(shape=(None, 3)), layers.LSTM(64), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.set_weights([w * 0 + 0.5 for w in model.get_weights()])
    print("ready", flush=True)
    while True:
        model.save(sys.argv[1])
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_kill_9_during_saves_leaves_the_old_file_and_the_next_save_cleans_up(tmp_path, delay):
    path = tmp_path / "m.rnnkit"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, "-c", _SAVE_LOOP, str(path)],
        stdout=subprocess.PIPE,
        env=environment,
    )
    try:
        assert process.stdout.readline().strip() == b"ready"
        while not path.exists():
            time.sleep(0.01)
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    loaded = rk.load_model(path)  # whatever save finished last, complete
    assert all(np.all(w == 0.5) for w in loaded.get_weights())
    for name in temporaries(tmp_path):  # what the kill left, made old enough to be stale
        os.utime(tmp_path / name, (time.time() - 7200,) * 2)
    loaded.save(path)
    assert temporaries(tmp_path) == []


def flip_one_byte(data: bytes, rng: np.random.Generator) -> bytes:
    position = int(rng.integers(len(data)))
    flipped = bytearray(data)
    flipped[position] ^= 1 << int(rng.integers(8))
    return bytes(flipped)


def load_into_a_new_model(path):
    model = small_model()
    rk.io.load_weights(model, path)
    return model


# How each kind of file is saved and loaded; both carry checksums (zip's CRC-32; HDF5 1.10's
# metadata checksums and Fletcher-32 on the weights).
FUZZED = {
    "model": (save_model, rk.load_model, "m.rnnkit"),
    "weights": (save_weights, load_into_a_new_model, "m.weights.h5"),
}


@pytest.mark.parametrize("kind", sorted(FUZZED))
def test_a_corrupted_file_gives_a_clear_error_or_the_saved_weights(tmp_path, kind):
    """One flipped bit anywhere: a ValueError naming the file, or exactly the saved weights,
    never other weights and never another error. Seeded: the same 150 flips every run."""
    save, load, name = FUZZED[kind]
    path = tmp_path / name
    model = small_model()
    save(model, path)
    data = path.read_bytes()
    saved = model.get_weights()
    rng = np.random.default_rng(0)
    corrupted = tmp_path / f"corrupted-{name}"
    outcomes = {"error": 0, "same": 0}
    for _ in range(150):
        corrupted.write_bytes(flip_one_byte(data, rng))
        try:
            loaded = load(corrupted)
        except ValueError as error:
            assert str(corrupted) in str(error)
            outcomes["error"] += 1
            continue
        for got, want in zip(loaded.get_weights(), saved):
            np.testing.assert_array_equal(got, want)
        outcomes["same"] += 1
    assert outcomes["error"] > 20


def test_load_weights_with_a_non_numeric_weight_assigns_nothing(tmp_path):
    import h5py

    model = small_model()
    path = tmp_path / "m.weights.h5"
    rk.io.save_weights(model, path)
    before = [w.copy() for w in model.get_weights()]
    with h5py.File(path, "r+") as file:
        last = "layers/dense/vars/1"
        shape = file[last].shape
        del file[last]
        file.create_dataset(last, data=np.full(shape, b"x", dtype="S1"))
    changed = small_model()
    changed.set_weights([w + 1 for w in before])
    with pytest.raises(ValueError, match=r"weight `bias` \('layers/dense/vars/1'\) holds \|S1"):
        rk.io.load_weights(changed, path)
    for got, want in zip(changed.get_weights(), before):
        np.testing.assert_array_equal(got, want + 1)  # nothing assigned
    torch.testing.assert_close(changed.layers[0].cell.kernel, torch.from_numpy(before[0] + 1))

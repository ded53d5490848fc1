"""Data-parallel `fit` (training/distributed.py): two CPU processes with gloo on localhost,
checked against a single-process run of the same script.

The test launches this file once per process, as torchrun would (RANK, WORLD_SIZE,
MASTER_ADDR=127.0.0.1, MASTER_PORT), with `python tests/test_distributed.py SCENARIO OUT_DIR`;
each launch is bounded in time and its processes are killed if they outlive the bound.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import layers
from rnnkit.training import distributed
from rnnkit.training.callbacks import CSVLogger, LambdaCallback, ModelCheckpoint
from rnnkit.training.progress import ProgbarLogger

WORLD_SIZE = 2
LAUNCH_TIMEOUT_SECONDS = 120  # generous: the processes share two cores with other work
GROUP_TIMEOUT_SECONDS = 20  # RNNKIT_DIST_TIMEOUT for the launched processes
HANG_TIMEOUT_SECONDS = 8  # ... where a test waits for it to expire
launches = pytest.mark.skipif(
    not torch.distributed.is_available() or sys.platform == "win32",
    reason="launches processes that talk over gloo and are killed with POSIX signals",
)


# ------------------------------------------------------------------ the script under test
def sentiment_data(samples: int = 42):
    """Word-index sequences labelled by which half holds the larger indices."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(samples, 6))
    return x, (x[:, :3].sum(axis=1) > x[:, 3:].sum(axis=1)).astype("float32")


def sentiment_model(seed: int):
    torch.manual_seed(seed)
    model = rk.Sequential(
        [
            layers.Embedding(20, 4),
            layers.SimpleRNN(4),
            layers.Dense(1, activation="sigmoid", kernel_regularizer=rk.regularizers.L2(1e-3)),
        ]
    )
    model.compile(
        optimizer=rk.optimizers.SGD(learning_rate=0.5), loss="binary_crossentropy", metrics=["acc"]
    )
    return model


def fit_sentiment(model, verbose=0, callbacks=()):
    """42 samples, 20% for validation: 33 to train in batches of 8 (the last batch, of one
    sample, leaves a process empty) and 9 to validate (8 + 1)."""
    x, y = sentiment_data()
    return model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        validation_split=0.2,
        shuffle=True,
        verbose=verbose,
        callbacks=list(callbacks),
    )


def stateful_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 5, 2)).astype("float32")
    return x, x.sum(axis=(1, 2))[:, None]


def stateful_model(seed: int):
    """Built lazily on the first batch: its first weights come from that process's RNG."""
    torch.manual_seed(seed)
    model = rk.Sequential([layers.SimpleRNN(3, stateful=True), layers.Dense(1)])
    model.compile(optimizer=rk.optimizers.SGD(learning_rate=0.05), loss="mse")
    return model


def fit_stateful(model):
    """Two `fit` calls (a fresh DistributedDataParallel wrapper each), states carried over."""
    x, y = stateful_data()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)


class SampleDataset(torch.utils.data.Dataset):
    """The arrays as a map-style Dataset of `(x_i, y_i)` samples; records the items read."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.read: list[int] = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        self.read.append(int(index))
        return self.x[index], self.y[index]


def fit_dataset(model):
    """The sentiment data as Datasets: 33 samples to train in global batches of 8, 9 to
    validate, shuffled by fit. Returns the History and the training items read."""
    x, y = sentiment_data()
    train = SampleDataset(x[:33], y[:33])
    history = model.fit(
        train,
        batch_size=8,
        epochs=2,
        shuffle=True,
        validation_data=SampleDataset(x[33:], y[33:]),
        verbose=0,
    )
    return history, train.read


def fit_loader(model, rank: int):
    """Each process its own DataLoader: of every 8 samples process 0 takes the first 5 and
    process 1 the other 3 (the last batch: one sample each); together a single process's
    batches of 8."""
    x, y = sentiment_data()
    starts = range(0, 40, 8)
    parts = [range(s, s + 5) if rank == 0 else range(s + 5, s + 8) for s in starts]
    parts.append([40 + rank])
    loader = torch.utils.data.DataLoader(SampleDataset(x, y), batch_sampler=parts)
    return model.fit(loader, verbose=0)


def worker(scenario: str, out: Path) -> None:
    """One process of a launch; the environment says which."""
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    if scenario == "train":
        # Each process seeds differently: process 0's weights and shuffle seed must win.
        model = sentiment_model(seed=rank)
        callbacks = [
            ModelCheckpoint(out / f"checkpoint-from-rank-{rank}.rnnkit", monitor="val_loss"),
            CSVLogger(out / f"log-from-rank-{rank}.csv"),
        ]
        history = fit_sentiment(model, verbose=1, callbacks=callbacks)
        stateful = stateful_model(seed=rank)
        fit_stateful(stateful)
        np.savez(
            out / f"result-{rank}.npz",
            *model.get_weights(),
            predictions=model.predict(sentiment_data()[0], verbose=0),
        )
        np.savez(out / f"stateful-{rank}.npz", *stateful.get_weights())
        (out / f"history-{rank}.json").write_text(json.dumps(history.history))
        dataset_model = sentiment_model(seed=rank)
        dataset_history, read = fit_dataset(dataset_model)
        (out / f"dataset-history-{rank}.json").write_text(json.dumps(dataset_history.history))
        (out / f"dataset-read-{rank}.json").write_text(json.dumps(read))
        np.savez(out / f"dataset-{rank}.npz", *dataset_model.get_weights())
        loader_model = sentiment_model(seed=rank)
        fit_loader(loader_model, rank)
        np.savez(out / f"loader-{rank}.npz", *loader_model.get_weights())
        x, y = sentiment_data(samples=40 + rank)  # a mistake: each process has other data
        try:
            model.fit(x, y, verbose=0)
        except ValueError as error:
            (out / f"different-data-{rank}.txt").write_text(str(error))
        model.fit(*sentiment_data(), batch_size=8, verbose=0)  # mended: the group still works
        np.savez(out / f"mended-{rank}.npz", *model.get_weights())
        return

    if scenario == "uneven":  # a mistake: process 1 has one batch more
        x, y = sentiment_data()
        loader = torch.utils.data.DataLoader(
            SampleDataset(x[: 12 + 4 * rank], y[: 12 + 4 * rank]), 4
        )
        model = sentiment_model(seed=rank)
        try:
            model.fit(loader, epochs=2, verbose=0)
        except ValueError as error:
            (out / f"uneven-{rank}.txt").write_text(str(error))
        even = torch.utils.data.DataLoader(SampleDataset(x[:12], y[:12]), 4)
        model.fit(even, verbose=0)  # mended: the group still works
        np.savez(out / f"mended-{rank}.npz", *model.get_weights())
        return

    def fail(batch, logs):
        if rank == 1 and batch == 2:
            if scenario == "raise":
                raise RuntimeError("process 1 fails on purpose")
            if scenario == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(LAUNCH_TIMEOUT_SECONDS)  # "hang"

    x, y = sentiment_data()
    model = sentiment_model(seed=0)
    model.fit(
        x, y, batch_size=4, epochs=3, verbose=0, callbacks=[LambdaCallback(on_batch_end=fail)]
    )


# ------------------------------------------------------------------------------- launching
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(
    scenario: str,
    out: Path,
    stop_after: int | None = None,
    group_timeout: float = GROUP_TIMEOUT_SECONDS,
) -> list[dict]:
    """Runs `worker(scenario)` in WORLD_SIZE processes; returns each one's exit code, seconds
    and output. With `stop_after=r`, waits for process `r` only, then kills the others."""
    port = str(free_port())
    started = time.monotonic()
    processes = []
    for rank in range(WORLD_SIZE):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD_SIZE),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "OMP_NUM_THREADS": "1",
            distributed.TIMEOUT_VARIABLE: str(group_timeout),
        }
        with open(out / f"stdout-{rank}.txt", "w") as stdout:
            with open(out / f"stderr-{rank}.txt", "w") as stderr:
                command = [sys.executable, __file__, scenario, str(out)]
                processes.append(subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr))
    results = [{} for _ in processes]
    try:
        waited = range(WORLD_SIZE) if stop_after is None else [stop_after]
        for rank in waited:
            remaining = LAUNCH_TIMEOUT_SECONDS - (time.monotonic() - started)
            try:
                results[rank]["code"] = processes[rank].wait(timeout=max(remaining, 0.1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"process {rank} of '{scenario}' ran past {LAUNCH_TIMEOUT_SECONDS} s")
            results[rank]["seconds"] = time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for rank, result in enumerate(results):
        result["stdout"] = (out / f"stdout-{rank}.txt").read_text()
        result["stderr"] = (out / f"stderr-{rank}.txt").read_text()
    return results


def load_weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files) - ("predictions" in archive))]


# ----------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    results = launch("train", out)
    for rank, result in enumerate(results):
        assert result["code"] == 0, f"process {rank} failed:\n{result['stderr'][-3000:]}"
    return out, results


@launches
def test_two_processes_train_like_one(trained):
    out, _ = trained
    single = sentiment_model(seed=0)
    single_history = fit_sentiment(single)
    untrained = sentiment_model(seed=0).get_weights()
    for rank in range(WORLD_SIZE):
        weights = load_weights(out / f"result-{rank}.npz")
        for got, expected, before in zip(weights, single.get_weights(), untrained):
            assert not np.allclose(expected, before)  # training moved every weight
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    histories = [json.loads((out / f"history-{rank}.json").read_text()) for rank in range(2)]
    assert histories[0] == histories[1]  # identical logs, so identical callback decisions
    assert list(histories[0]) == ["acc", "loss", "val_acc", "val_loss"]
    for name, values in single_history.history.items():
        np.testing.assert_allclose(histories[0][name], values, rtol=1e-5, atol=1e-6)


@launches
def test_a_dataset_is_split_between_processes_like_arrays(trained):
    out, _ = trained
    single = sentiment_model(seed=0)
    single_history, _ = fit_dataset(single)
    untrained = sentiment_model(seed=0).get_weights()
    reads = [json.loads((out / f"dataset-read-{rank}.json").read_text()) for rank in range(2)]
    # Each process read its part of every batch (2 epochs of 33 samples, the last batch one
    # sample, for which process 0 reads a stand-in), never the whole batch.
    assert len(reads[0]) == len(reads[1]) == 33 + 1
    assert set(reads[0]) | set(reads[1]) == set(range(33))
    for rank in range(WORLD_SIZE):
        weights = load_weights(out / f"dataset-{rank}.npz")
        for got, expected, before in zip(weights, single.get_weights(), untrained):
            assert not np.allclose(expected, before)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        history = json.loads((out / f"dataset-history-{rank}.json").read_text())
        for name, values in single_history.history.items():
            np.testing.assert_allclose(history[name], values, rtol=1e-5, atol=1e-6)


@launches
def test_each_process_own_dataloader_trains_like_one_process_on_the_whole_batches(trained):
    out, _ = trained
    single = sentiment_model(seed=0)
    x, y = sentiment_data()
    single.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for rank in range(WORLD_SIZE):
        for got, expected in zip(load_weights(out / f"loader-{rank}.npz"), single.get_weights()):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@launches
def test_dataloaders_with_different_numbers_of_batches_are_refused(tmp_path):
    results = launch("uneven", tmp_path)
    for rank, result in enumerate(results):
        assert result["code"] == 0, f"process {rank} failed:\n{result['stderr'][-3000:]}"
        message = (tmp_path / f"uneven-{rank}.txt").read_text()
        assert "different numbers of batches in `x`: 1 of 2 still have a batch" in message
        assert "DistributedSampler" in message
        assert "training stopped" not in result["stderr"]  # raised everywhere: nothing shut down
    assert_trained_in_step(tmp_path / "mended-0.npz", tmp_path / "mended-1.npz")


def assert_trained_in_step(first: Path, second: Path) -> None:
    """The two processes' weights are equal: a fit after a refused one still trained together."""
    for got, expected in zip(load_weights(first), load_weights(second), strict=True):
        np.testing.assert_array_equal(got, expected)


@launches
def test_stateful_layers_carry_their_state_per_process(trained):
    out, _ = trained
    single = stateful_model(seed=0)
    fit_stateful(single)
    for rank in range(WORLD_SIZE):
        weights = load_weights(out / f"stateful-{rank}.npz")
        for got, expected in zip(weights, single.get_weights()):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@launches
def test_processes_with_different_data_are_refused(trained):
    out, results = trained
    for rank in range(WORLD_SIZE):
        message = (out / f"different-data-{rank}.txt").read_text()
        assert "the number of training samples ranges from 40 to 41" in message
        assert "training stopped" not in results[rank]["stderr"]  # nothing shut down
        mended, before = (
            load_weights(out / f"mended-{rank}.npz"),
            load_weights(out / f"result-{rank}.npz"),
        )
        assert not np.allclose(mended[0], before[0])  # the mended fit trained
    assert_trained_in_step(out / "mended-0.npz", out / "mended-1.npz")


@launches
def test_only_process_zero_prints_and_writes_files(trained):
    out, results = trained
    assert sorted(path.name for path in out.glob("*.rnnkit")) == ["checkpoint-from-rank-0.rnnkit"]
    assert sorted(path.name for path in out.glob("*.csv")) == ["log-from-rank-0.csv"]
    history = json.loads((out / "history-0.json").read_text())
    rows = (out / "log-from-rank-0.csv").read_text().splitlines()
    assert rows[0] == "epoch,acc,loss,val_acc,val_loss"
    assert [float(v) for v in rows[-1].split(",")[1:]] == pytest.approx(
        [history[name][-1] for name in ("acc", "loss", "val_acc", "val_loss")]
    )
    assert "Epoch 2/2" in results[0]["stdout"] and "val_loss" in results[0]["stdout"]
    assert results[1]["stdout"] == ""


@launches
def test_a_model_saved_by_a_distributed_run_loads_in_one_process(trained):
    out, _ = trained
    model = rk.load_model(out / "checkpoint-from-rank-0.rnnkit")
    with np.load(out / "result-0.npz") as archive:
        expected = archive["predictions"]
    np.testing.assert_allclose(model.predict(sentiment_data()[0], verbose=0), expected, atol=1e-7)


@launches
@pytest.mark.parametrize("failure", ["raise", "kill"])
def test_a_failing_process_ends_the_whole_run(tmp_path, failure):
    results = launch(failure, tmp_path)
    assert all(result["code"] != 0 for result in results), [r["code"] for r in results]
    # The others notice at once (a lost connection), well before the group's timeout.
    assert results[0]["seconds"] < LAUNCH_TIMEOUT_SECONDS
    assert "rnnkit: training stopped on process 0 of 2" in results[0]["stderr"]
    if failure == "raise":
        assert "process 1 fails on purpose" in results[1]["stderr"]
        assert "rnnkit: training stopped on process 1 of 2" in results[1]["stderr"]
    else:
        assert results[1]["code"] == -signal.SIGKILL


@launches
def test_a_hanging_process_is_given_up_on_after_the_timeout(tmp_path):
    results = launch("hang", tmp_path, stop_after=0, group_timeout=HANG_TIMEOUT_SECONDS)
    assert results[0]["code"] != 0
    assert results[0]["seconds"] < HANG_TIMEOUT_SECONDS + 40  # start-up on a busy machine
    assert "rnnkit: training stopped on process 0 of 2" in results[0]["stderr"]


# -------------------------------------------------------------- pieces, in one process
def hand_to_a_worker_thread(hold_seconds: float, released: list[float]):
    """A stand-in for a blocking collective whose worker thread keeps a reference to the tensor
    for `hold_seconds` after the call returns (as gloo's does at times); appends the time it
    lets go to `released`."""

    def collective(tensor: torch.Tensor) -> None:
        def hold(held: list[torch.Tensor]) -> None:
            time.sleep(hold_seconds)
            held.clear()
            released.append(time.monotonic())

        threading.Thread(target=hold, args=([tensor],), daemon=True).start()

    return collective


def test_an_exchange_returns_once_the_worker_thread_has_let_go_of_its_tensor():
    released: list[float] = []
    tensor = torch.zeros(2)
    assert distributed._exchange(hand_to_a_worker_thread(0.05, released), tensor) is tensor
    returned = time.monotonic()
    assert released and released[0] <= returned


def test_an_exchange_waits_for_a_worker_thread_no_longer_than_the_bound(monkeypatch):
    monkeypatch.setattr(distributed, "RELEASE_WAIT_SECONDS", 0.05)
    released: list[float] = []
    started = time.monotonic()
    distributed._exchange(hand_to_a_worker_thread(2.0, released), torch.zeros(2))
    assert not released and time.monotonic() - started < 1.5


def test_shard_splits_each_batch_into_contiguous_parts():
    first, second = distributed.Group(0, 2), distributed.Group(1, 2)
    assert first.shard(slice(8, 16)) == (slice(8, 12), 1.0)
    assert second.shard(slice(8, 16)) == (slice(12, 16), 1.0)
    assert first.shard(slice(32, 37)) == (slice(32, 34), 0.8)
    assert second.shard(slice(32, 37)) == (slice(34, 37), 1.2)
    part, share = second.shard(torch.tensor([5, 1, 4]))
    assert part.tolist() == [1, 4] and share == pytest.approx(4 / 3)
    part, share = first.shard(torch.tensor([7]))
    assert part.tolist() == [7] and share == 0.0  # a stand-in, weight zero
    assert first.shard(slice(40, 41)) == (slice(40, 41), 0.0)
    assert second.shard(slice(40, 41)) == (slice(40, 41), 2.0)
    assert distributed.SINGLE_PROCESS.shard(slice(0, 5)) == (slice(0, 5), 1.0)


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup() is distributed.SINGLE_PROCESS
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert distributed.setup() is distributed.SINGLE_PROCESS
    assert distributed.is_primary()


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_VARIABLE, raising=False)
    assert distributed.timeout().total_seconds() == distributed.DEFAULT_TIMEOUT_SECONDS
    monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, "12.5")
    assert distributed.timeout().total_seconds() == 12.5
    for bad in ["soon", "0", "-3", "inf"]:
        monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, bad)
        with pytest.raises(ValueError, match="RNNKIT_DIST_TIMEOUT must be a positive number"):
            distributed.timeout()


def test_other_processes_stay_silent_and_write_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_primary()
    model = sentiment_model(seed=0)
    x, y = sentiment_data()
    logger = ProgbarLogger()
    checkpoint = ModelCheckpoint(tmp_path / "model.rnnkit", monitor="loss", verbose=1)
    csv_logger = CSVLogger(tmp_path / "log.csv")
    for callback in (logger, checkpoint, csv_logger):
        callback.set_model(model)
        callback.set_params({"verbose": 1, "epochs": 2, "steps": 1})
    for callback in (logger, checkpoint, csv_logger):
        callback.on_train_begin()
        callback.on_epoch_begin(0)
        callback.on_train_batch_end(0, {"loss": 0.5})
        callback.on_epoch_end(0, {"loss": 0.5})
        callback.on_train_end()
    model.evaluate(x, y)
    assert capsys.readouterr().out == ""
    assert list(tmp_path.iterdir()) == []


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))

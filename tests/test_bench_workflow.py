"""`rnnkit bench`'s whole-action workloads (`rnnkit.bench_workflow`) at tiny shapes: every
implementation computes the same model, states are carried from call to call, rows carry the
ratios against the peers, Keras is skipped with a reason where it cannot run, and `bench.run`
and the command line include them. (Timings themselves are never asserted.)"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch

from rnnkit import bench, bench_workflow, cli
from rnnkit.kernels import cpu_library


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(
        bench_workflow,
        "CHAPTER_MODEL",
        {"samples": 20, "timesteps": 6, "vocabulary": 30, "embedding": 4, "units": 5,
         "batch_size": 8},
    )  # fmt: skip
    monkeypatch.setattr(bench_workflow, "SMALL_CALL", {"features": 3, "units": 4,
                                                       "timesteps": (1, 3)})  # fmt: skip
    monkeypatch.setattr(bench_workflow, "CALLS_PER_TIMING", 2)
    monkeypatch.setattr(bench, "PAUSE_BETWEEN_PEERS", 0.0)


def test_the_torch_peer_is_the_chapter_model(tiny):
    """With the rnnkit model's weights, the hand-written torch.nn model predicts the same."""
    x, _ = bench_workflow.chapter_data()
    model = bench_workflow.rnnkit_chapter_model()
    expected = model.predict(x, verbose=0)[:, 0]
    embedding, lstm, dense = model.layers
    peer = bench_workflow.TorchChapterModel()
    with torch.no_grad():
        peer.embedding.weight.copy_(torch.from_numpy(embedding.get_weights()[0]))
        peer.lstm.load_state_dict(lstm.to_torch().state_dict())
        kernel, bias = dense.get_weights()
        peer.dense.weight.copy_(torch.from_numpy(kernel.T))
        peer.dense.bias.copy_(torch.from_numpy(bias))
        np.testing.assert_allclose(peer(torch.from_numpy(x)).numpy(), expected, atol=1e-5)


def test_fit_row_times_every_implementation_against_the_fastest_peer(tiny):
    (row,) = bench_workflow.fit_rows(1, io.StringIO())
    keras, reason = bench_workflow.keras_or_reason()
    expected = {"rnnkit", "torch_nn"} | ({"keras_jax"} if keras else set())
    assert set(row["times"]) == expected
    assert row["skipped"] == ({} if keras else {"keras_jax": reason})
    for mode in ("train_ms", "infer_ms"):
        peers = [row["times"][peer][mode] for peer in bench_workflow.FIT_PEERS if peer in expected]
        assert row["fastest_peer_" + mode] == min(peers)
        entry = row["times"]["rnnkit"]
        assert entry[mode[:-3] + "_vs_fastest_peer"] == pytest.approx(min(peers) / entry[mode])


def test_without_keras_the_fit_row_says_why(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` raises ImportError
    stream = io.StringIO()
    (row,) = bench_workflow.fit_rows(1, stream)
    assert set(row["times"]) == {"rnnkit", "torch_nn"}
    assert "not installed" in row["skipped"]["keras_jax"]
    assert "keras_jax     skipped: Keras (JAX backend) is not installed" in stream.getvalue()


@pytest.mark.parametrize("timesteps", [1, 3])
def test_small_call_peers_carry_their_states_and_agree_with_rnnkit(tiny, timesteps):
    steps = bench_workflow.small_call_steps(timesteps)
    first = {name: step() for name, step in steps.items()}
    second = {name: step() for name, step in steps.items()}
    for name in bench_workflow.STEP_PEERS:
        torch.testing.assert_close(first[name], first["rnnkit"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(second[name], second["rnnkit"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(first["rnnkit"], second["rnnkit"])  # the state was carried


def test_small_call_rows_give_each_implementations_ratio_to_each_peer(tiny):
    rows = bench_workflow.small_call_rows(1, io.StringIO())
    assert [row["workload"] for row in rows] == [
        "small_call/lstm_3x4/batch1_t1",
        "small_call/lstm_3x4/batch1_t3",
    ]
    for row in rows:
        times = row["times"]
        assert set(times) == {"rnnkit", *bench_workflow.STEP_PEERS}
        for entry in times.values():
            for peer in bench_workflow.STEP_PEERS:
                ratio = times[peer]["step_us"] / entry["step_us"]
                assert entry[f"vs_{peer}"] == pytest.approx(ratio)


def test_bench_run_adds_the_workflow_rows_and_the_cpu(tiny, monkeypatch):
    monkeypatch.setitem(bench.SHAPES, "tiny", (3, 4, 2, 5))
    stream = io.StringIO()
    workloads = [bench.Workload("lstm", "tiny")]
    results = bench.run(workloads, ("rnnkit_fused", "torch_nn"), repeats=1, memory=False,
                        stream=stream, workflows=["small_call"])  # fmt: skip
    names = [row["workload"] for row in results["results"]]
    assert names == ["lstm/tiny/plain", *(f"small_call/lstm_3x4/batch1_t{t}" for t in (1, 3))]
    assert results["cpu"]["model"]  # "unknown" where neither /proc/cpuinfo nor platform says
    assert results["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert results["cpu"]["kernel_isa"] == cpu_library.kernel_isa()
    first_line = stream.getvalue().splitlines()[0]
    assert first_line.startswith(f"CPU: {results['cpu']['model']}")
    assert first_line.endswith(f"rnnkit kernels for {cpu_library.kernel_isa()}")


@pytest.mark.parametrize(
    ("flags", "expected"), [([], tuple(bench.WORKFLOWS)), (["--no-workflows"], ())]
)
def test_the_command_line_runs_the_workflows_unless_told_not_to(
    flags, expected, monkeypatch, tmp_path
):
    received = {}
    monkeypatch.setattr(bench, "run", lambda *args, **kwargs: received.update(kwargs) or {})
    assert cli.main(["bench", "--quick", *flags, "--out", str(tmp_path)], io.StringIO()) == 0
    assert received["workflows"] == expected

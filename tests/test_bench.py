"""The benchmarks' plumbing (`rnnkit.bench`, `rnnkit.bench_cuda`) at a tiny shape: what they
build runs and trains, the ratios are against the fastest peer, and the command line refuses
what it cannot measure. (Timings themselves are never asserted.)"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rnnkit import bench, bench_cuda, cli

TINY = (3, 4, 2, 5)  # batch, timesteps, features, units


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(bench.SHAPES, "tiny", TINY)
    monkeypatch.setattr(bench, "PAUSE_BETWEEN_PEERS", 0.0)
    return "tiny"


def test_medians_in_turns_alternates_the_functions(monkeypatch):
    calls = []
    clock = iter(range(1000))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    durations = {"a": [], "b": []}

    def call(name):
        calls.append(name)
        for _ in range(len(durations[name])):  # each call of a function lasts one tick longer
            next(clock)
        durations[name].append(None)

    medians = bench.medians_in_turns({"a": lambda: call("a"), "b": lambda: call("b")}, 3)
    assert calls == ["a", "b"] * 4  # a warm-up call each, then three rounds in turns
    assert medians == {"a": 3, "b": 3}  # the timed calls last 2, 3 and 4 ticks


def test_after_a_pause_each_timed_call_follows_an_untimed_call_of_the_same_function(monkeypatch):
    events = []
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: events.append(("sleep", seconds)))
    clock = iter(range(1000))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: events.append("clock") or next(clock))
    functions = {name: (lambda name=name: events.append(name)) for name in ("a", "b")}
    bench.medians_in_turns(functions, 1, pause=0.5)
    warm_up = ["a", "b"]
    timed_a = [("sleep", 0.5), "a", "clock", "a", "clock"]  # sleep, untimed call, timed call
    timed_b = [("sleep", 0.5), "b", "clock", "b", "clock"]
    assert events == warm_up + timed_a + timed_b


@pytest.mark.parametrize(
    ("cell", "options"),
    [("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False})],
)
def test_train_flops_are_the_products_a_training_step_runs(cell, options, tiny):
    """The loop's matrix products in a forward and backward pass, counted by PyTorch, with the
    initial states needing a gradient (so that every step's state gradient is formed, as the
    fused kernel forms it) and the inputs not (as in the benchmark)."""
    from torch.utils.flop_counter import FlopCounterMode

    from rnnkit import layers

    batch, timesteps, features, units = TINY
    cls = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[cell]
    layer = cls(units, use_fused=False, **options)
    x = torch.randn(batch, timesteps, features)
    n_states = 2 if cell == "lstm" else 1
    states = [torch.zeros(batch, units, requires_grad=True) for _ in range(n_states)]
    layer(x, initial_state=states)  # builds the weights outside the count
    with FlopCounterMode(display=False) as counter:
        layer(x, initial_state=states).sum().backward()
    assert bench.Workload(cell, tiny).train_flops() == counter.get_total_flops()


def test_cpu_run_reports_ratios_against_the_fastest_peer(tiny):
    workloads = [bench.Workload("lstm", tiny), bench.Workload("gru", tiny, "mask")]
    results = bench.run(workloads, ("rnnkit_fused", "torch_nn"), repeats=1, memory=False,
                        stream=io.StringIO())  # fmt: skip
    plain, masked = results["results"]
    assert plain["workload"] == "lstm/tiny/plain"
    for mode in ("train_ms", "infer_ms"):
        fastest = plain["fastest_peer_" + mode]
        assert fastest == plain["times"]["torch_nn"][mode]
        fused = plain["times"]["rnnkit_fused"]
        assert fused[mode[:-3] + "_vs_fastest_peer"] == pytest.approx(fastest / fused[mode])
    assert set(masked["times"]) == {"rnnkit_fused"}  # torch.nn has no masking
    assert masked["fastest_peer_train_ms"] is None
    ratios = results["option_ratios"]["gru/tiny"]
    assert set(ratios) == {"train", "infer"} and set(ratios["train"]) == set(bench.OPTIONS)
    assert all(r > 0 for mode in ratios.values() for r in mode.values())


def test_cuda_workloads_are_the_issues():
    names = {w.name for w in bench_cuda.default_workloads(("lstm",))}
    assert {"lstm/b16_t1024_u768/plain", "lstm/b256_t100_u512/plain"} <= names
    assert {f"lstm/chapter/{variant}" for variant in bench.OPTIONS} <= names


@pytest.mark.parametrize("implementation", ["rnnkit_auto", "torch_nn"])
def test_cuda_steps_train_on_any_device(implementation, tiny):
    train, infer = bench_cuda.steps(implementation, bench.Workload("gru", tiny), torch.float32,
                                    device="cpu")  # fmt: skip
    before = infer()
    train()
    after = infer()
    assert before.shape == after.shape == (TINY[0], TINY[3])
    assert not torch.equal(before, after)


def test_triton_steps_are_skipped_where_the_kernels_cannot_run(tiny):
    # CPU tensors outside Triton's interpreter: gpu.supports refuses them.
    steps = bench_cuda.steps("rnnkit_triton", bench.Workload("lstm", tiny), torch.float32, "cpu")
    assert steps is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_bench_on_cuda_without_a_gpu_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["bench", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bench_refuses_the_other_devices_shapes(capsys):
    assert cli.main(["bench", "--shapes", "b16_t1024_u256"]) == 2
    assert "not cpu workloads" in capsys.readouterr().err


def test_data_path_compares_lazy_windows_with_the_same_windows_as_arrays(monkeypatch, tmp_path):
    from rnnkit import bench_data

    shape = {"batch_size": 4, "steps": 3, "sequence_length": 5, "sampling_rate": 2,
             "features": 3, "units": 2}  # fmt: skip
    data, targets = bench_data.series(shape)
    lazy = bench_data.windows(shape, data, targets)
    x, y = bench_data.materialise(lazy)
    assert len(lazy) == 3 and x.shape == (12, 5, 3) and y.shape == (12,)
    np.testing.assert_array_equal(x[5], data[5 : 5 + 2 * 5 : 2])  # window 5: every 2nd row
    result = bench_data.run(shape, repeats=1)
    assert set(result["seconds"]) == set(result["peak_mb"]) == {"windows", "arrays"}
    assert result["ratio"] == result["seconds"]["windows"] / result["seconds"]["arrays"] > 0
    assert result["windows_mb"] == 12 * 5 * 3 * 4 / 2**20
    monkeypatch.setattr(bench_data, "SHAPE", shape)
    stream = io.StringIO()
    argv = ["bench", "--data-path", "--repeats", "1", "--no-memory", "--out", str(tmp_path)]
    assert cli.main(argv, stream=stream) == 0
    assert "data path: windows / arrays =" in stream.getvalue()
    assert (tmp_path / "bench_data_path.json").exists()

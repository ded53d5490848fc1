"""Models: symbolic shapes, Sequential and functional graphs, summary, saving and loading."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
import zip_damage

import rnnkit as rk
from rnnkit import layers


def chapter_model():
    return rk.Sequential([layers.Embedding(10000, 32), layers.SimpleRNN(32)])


def test_summary_of_the_chapter_model_before_any_data():
    lines = []
    chapter_model().summary(print_fn=lines.append)
    text = lines[0]
    assert "│ embedding" in text and "(Embedding)" in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert "(None, None, 32)" in rows[0] and rows[0].rstrip(" │").endswith("320,000")
    assert "(None, 32)" in rows[1] and rows[1].rstrip(" │").endswith("2,080")
    assert " Total params: 322,080 (1.23 MB)" in text
    assert " Trainable params: 322,080 (1.23 MB)" in text
    assert " Non-trainable params: 0 (0.00 B)" in text


def test_summary_of_stacked_layers_with_input():
    model = rk.Sequential(
        [
            rk.Input(shape=(None, 14)),
            layers.SimpleRNN(32, return_sequences=True),
            layers.SimpleRNN(32, return_sequences=True),
            layers.SimpleRNN(32),
        ]
    )
    lines = []
    model.summary(print_fn=lines.append)
    rows = [line for line in lines[0].splitlines() if line.startswith("│")]
    assert [row.count("(None, None, 32)") for row in rows] == [1, 1, 0]
    assert rows[0].rstrip(" │").endswith("1,504")  # 14*32 + 32*32 + 32
    assert rows[1].rstrip(" │").endswith("2,080")
    assert "Total params: 5,664" in lines[0]


def test_summary_marks_unbuilt_layers():
    lines = []
    rk.Sequential([layers.SimpleRNN(4)]).summary(print_fn=lines.append)
    assert "?" in lines[0] and "0 (unbuilt)" in lines[0]


def test_input_and_symbolic_shapes():
    inputs = rk.Input(shape=(None, 14))
    assert inputs.shape == (None, None, 14)
    outputs = layers.SimpleRNN(16, return_sequences=True)(inputs)
    assert outputs.shape == (None, None, 16)
    output, h, c = layers.LSTM(8, return_state=True)(outputs)
    assert output.shape == h.shape == c.shape == (None, 8)
    assert layers.Bidirectional(layers.GRU(5))(inputs).shape == (None, 10)


def test_functional_model_with_two_inputs_shared_layer_and_two_outputs():
    text = rk.Input(shape=(None, 3), name="text")
    other = rk.Input(shape=(None, 3), name="other")
    shared = layers.LSTM(4)
    merged_a, merged_b = shared(text), shared(other)
    model = rk.Model([text, other], [layers.Dense(1)(merged_a), layers.Dense(2)(merged_b)])
    assert len(model.layers) == 3  # the shared LSTM once
    x1, x2 = np.random.rand(2, 5, 3), np.random.rand(2, 6, 3)
    out_a, out_b = model([x1, x2])
    assert out_a.shape == (2, 1) and out_b.shape == (2, 2)
    torch.testing.assert_close(
        model.layers[2](shared(x2)), out_b, msg="the graph replays the same calls"
    )
    with pytest.raises(ValueError, match="expects 2 input"):
        model(x1)


def test_functional_model_passes_embedding_mask_and_initial_states():
    tokens = rk.Input(shape=(None,), dtype="int64")
    embedded = layers.Embedding(20, 4, mask_zero=True)(tokens)
    _, h, c = layers.LSTM(3, return_state=True)(embedded)
    decoded = layers.LSTM(3)(embedded, initial_state=[h, c])
    model = rk.Model(tokens, decoded)
    ids = np.array([[0, 0, 5, 6], [1, 2, 3, 4]])
    got = model(ids)
    # Recompute by hand with the same layers and the mask from the embedding.
    embedding, encoder, decoder = model.layers
    vectors = embedding(torch.as_tensor(ids))
    mask = embedding.compute_mask(torch.as_tensor(ids))
    _, h_ref, c_ref = encoder(vectors, mask=mask)
    torch.testing.assert_close(got, decoder(vectors, mask=mask, initial_state=[h_ref, c_ref]))


def test_sequential_mask_reaches_the_recurrent_layer():
    model = rk.Sequential([layers.Embedding(10, 3, mask_zero=True), layers.SimpleRNN(2)])
    padded = model(np.array([[0, 0, 4, 5]]))
    unpadded = model(np.array([[4, 5]]))
    torch.testing.assert_close(padded, unpadded)


def test_embedding_input_length_listing_trains():
    """The chapter's first embedding listing: shapes known before data, then it learns."""
    model = rk.Sequential(
        [
            layers.Embedding(100, 8, input_length=20),
            layers.Flatten(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    lines = []
    model.summary(print_fn=lines.append)
    assert "(None, 20, 8)" in lines[0] and "(None, 160)" in lines[0]
    rng = np.random.default_rng(0)
    x = rng.integers(1, 100, size=(64, 20))
    y = (x[:, 0] < 50).astype("float32")
    model.compile(optimizer=rk.optimizers.RMSprop(0.01), loss="binary_crossentropy")
    losses = model.fit(x, y, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_embedding_input_length_is_checked():
    with pytest.raises(ValueError, match="input_length"):
        layers.Embedding(10, 2, input_length=0)
    model = rk.Sequential([layers.Embedding(10, 2, input_length=5), layers.Flatten()])
    with pytest.raises(ValueError, match=r"input_length=5, received inputs with 7 timesteps"):
        model.predict(np.ones((2, 7), dtype="int64"), verbose=0)


@pytest.mark.parametrize("with_input", [True, False])
def test_layer_returning_states_inside_sequential_is_a_clear_error(with_input):
    """Found at `add` when shapes are known, else at the first call."""
    stack = [layers.LSTM(4, return_state=True, name="encoder"), layers.Dense(1)]
    with pytest.raises(ValueError, match=r"layer 'encoder' \(LSTM\).*return_state=True"):
        model = rk.Sequential([rk.Input((None, 3)), *stack] if with_input else stack)
        model(np.zeros((2, 5, 3), dtype="float32"))


def test_layer_returning_states_may_end_a_sequential():
    model = rk.Sequential([rk.Input((None, 3)), layers.GRU(4, return_state=True)])
    output, state = model(np.zeros((2, 5, 3), dtype="float32"))
    assert output.shape == state.shape == (2, 4)


def test_input_shape_argument_lets_sequential_infer_shapes():
    model = rk.Sequential([layers.SimpleRNN(8, input_shape=(None, 5)), layers.Dense(1)])
    assert model.built and [w.shape for w in model.get_weights()][0] == (5, 8)


def test_reset_state_resets_every_stateful_layer():
    model = rk.Sequential([layers.SimpleRNN(2, stateful=True), layers.Dense(1)])
    model(np.ones((1, 3, 2)))
    rnn = model.layers[0]
    assert rnn.states[0].abs().sum() > 0
    model.reset_state()
    assert rnn.states[0].abs().sum() == 0


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_save_and_load_predict_identically(tmp_path, kind):
    if kind == "sequential":
        model = rk.Sequential(
            [
                rk.Input(shape=(None,), dtype="int64"),
                layers.Embedding(30, 4, mask_zero=True),
                layers.Bidirectional(layers.GRU(3, reset_after=False)),
                layers.Dense(1, activation="sigmoid"),
            ]
        )
        x = np.random.default_rng(0).integers(0, 30, size=(5, 7))
    else:
        inputs = rk.Input(shape=(None, 3))
        hidden = layers.LSTM(4, return_sequences=True, recurrent_dropout=0.2)(inputs)
        model = rk.Model(inputs, layers.TimeDistributed(layers.Dense(2))(hidden))
        x = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
    model.eval()
    path = tmp_path / "model.rnnkit"
    model.save(path)
    loaded = rk.load_model(path)
    loaded.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert type(loaded) is type(model)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    model = chapter_model()
    path = tmp_path / "model.rnnkit"
    model.save(path)
    good = path.read_bytes()

    def broken_writestr(self, name, data):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken_writestr)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.rnnkit"]


def test_truncated_or_foreign_files_give_clear_errors(tmp_path):
    path = tmp_path / "model.rnnkit"
    chapter_model().save(path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.rnnkit"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        rk.load_model(truncated)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match="not an rnnkit model file"):
        rk.load_model(foreign)
    with pytest.raises(FileNotFoundError):
        rk.load_model(tmp_path / "missing.rnnkit")


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built yet"):
        rk.Sequential([layers.SimpleRNN(3)]).save(tmp_path / "m.rnnkit")


def test_bad_model_arguments():
    with pytest.raises(TypeError, match="`inputs` must be a symbolic tensor"):
        rk.Model(np.zeros(3), rk.Input(shape=(2,)))
    with pytest.raises(TypeError, match="expects a layer"):
        rk.Sequential([3])
    with pytest.raises(ValueError, match="exactly one of `shape` and `batch_shape`"):
        rk.Input()
    orphan = rk.Input(shape=(None, 2))
    with pytest.raises(ValueError, match="not in `inputs`"):
        rk.Model(rk.Input(shape=(None, 2)), layers.SimpleRNN(2)(orphan))


def saved_model_file(tmp_path):
    path = tmp_path / "model.rnnkit"
    model = rk.Sequential([rk.Input(shape=(None, 3)), layers.GRU(4)])
    model.compile(optimizer="adam", loss="mse")
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: zip_damage.break_deflate_stream(p, "config.json"), "zlib.error|BadZipFile"),
        (zip_damage.mark_strongly_encrypted, "strong encryption"),
        (lambda p: zip_damage.replace_member(p, "metadata.json", b"{"), "metadata.json.*JSON"),
        (lambda p: zip_damage.replace_member(p, "metadata.json", b"[]"), "metadata.json must"),
        (lambda p: zip_damage.replace_member(p, "config.json", b"{not json"), "config.json"),
        (lambda p: zip_damage.replace_member(p, "config.json", b"7"), "config.json must hold"),
        (
            lambda p: zip_damage.replace_member(
                p, "config.json", b'{"class_name": "Sequential", "config": {"name": "s"}}'
            ),
            r"field 'config.layers' is missing",
        ),
        (
            lambda p: zip_damage.replace_member(
                p,
                "config.json",
                b'{"class_name": "Sequential", "config": {"name": "s", "layers": [{"a": 1}]}}',
            ),
            r"field 'config.layers\[0\]' must be a layer config",
        ),
        (
            lambda p: zip_damage.replace_member(p, "model.safetensors", b"\x08" + b"\0" * 20),
            r"model.safetensors.*SafetensorError",
        ),
        (
            lambda p: zip_damage.replace_member(p, "optimizer.pt", b"garbage"),
            "optimizer.pt",
        ),
        (
            lambda p: zip_damage.replace_member(p, "compile.json", b'{"optimizer": 3}'),
            "compile.json is not valid",
        ),
    ],
    ids=[
        "zlib",
        "encrypted",
        "bad_metadata_json",
        "metadata_not_an_object",
        "bad_config_json",
        "config_not_an_object",
        "no_layers",
        "bad_layer",
        "safetensors",
        "optimizer_pickle",
        "compile_arguments",
    ],
)
def test_damaged_or_hand_edited_model_files_give_one_clear_error(tmp_path, damage, message):
    path = saved_model_file(tmp_path)
    damage(path)
    with pytest.raises(ValueError, match=message) as caught:
        rk.load_model(path)
    assert str(path) in str(caught.value)


def test_sequential_records_shapes_at_the_first_call_and_sees_a_layer_added_later():
    model = rk.Sequential([layers.Dense(4), layers.Dense(3)])
    x = torch.randn(2, 5)
    first = model(x)
    shapes = model._output_shapes
    assert shapes == [(None, 4), (None, 3)]
    torch.testing.assert_close(model(x), first)
    assert model._output_shapes is shapes  # later calls record nothing
    model.add(layers.Dense(2))
    assert model(x).shape == (2, 2)
    assert [row[2] for row in model.summary_rows()] == [(None, 4), (None, 3), (None, 2)]

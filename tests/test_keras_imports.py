"""The book's import blocks run with only the package name changed (`keras` -> `rnnkit`).

Each block below is written as it appears in the recurrent-networks chapter of Chollet's "Deep
Learning with Python" and in Keras's IMDB examples. `as_rnnkit` swaps the package name and
nothing else; the block then runs against rnnkit. Where Keras 3 is installed the blocks also run
against Keras itself (those that Keras 3 still supports), so they are known to be real Keras
code. A second set of tests checks that every name rnnkit implements is reachable under Keras's
module path for it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import textwrap

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

# name: (source as in the book, whether Keras 3 still has every import in it)
BLOCKS: dict[str, tuple[str, bool]] = {
    "imdb_notebook_first_cell": (
        """
        from keras.preprocessing.text import Tokenizer
        from keras.preprocessing.sequence import pad_sequences
        import numpy as np
        """,
        False,  # Keras 3 dropped keras.preprocessing.text; rnnkit keeps the legacy Tokenizer
    ),
    "word_embeddings": (
        """
        from keras.datasets import imdb
        from keras import preprocessing
        from keras.models import Sequential
        from keras.layers import Flatten, Dense, Embedding
        x = preprocessing.sequence.pad_sequences([[1, 2, 3]], maxlen=20)
        """,
        True,
    ),
    "simple_rnn": (
        """
        from keras.models import Sequential
        from keras.layers import Embedding, SimpleRNN, LSTM, GRU, Dense, Flatten
        from keras.datasets import imdb
        from keras.preprocessing import sequence
        from keras.optimizers import RMSprop
        """,
        True,
    ),
    "keras_modules": (
        """
        from keras import optimizers, losses, metrics, layers, models, callbacks
        optimizer = optimizers.RMSprop(learning_rate=1e-4)
        loss = losses.BinaryCrossentropy()
        metric = metrics.BinaryAccuracy()
        stop = callbacks.EarlyStopping(patience=2)
        model = models.Sequential([layers.Dense(1)])
        """,
        True,
    ),
    "submodules": (
        """
        import keras.datasets.imdb
        import keras.preprocessing.sequence
        from keras.datasets.imdb import load_data, get_word_index
        from keras.models import Sequential, Model, load_model
        from keras.callbacks import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
        from keras.losses import BinaryCrossentropy, SparseCategoricalCrossentropy
        from keras.metrics import BinaryAccuracy, SparseCategoricalAccuracy
        from keras.optimizers import Adam, SGD
        """,
        True,
    ),
    "functional_third_edition": (
        """
        from tensorflow import keras
        from tensorflow.keras import layers
        inputs = keras.Input(shape=(None, 14))
        x = layers.Bidirectional(layers.LSTM(16))(inputs)
        x = layers.Dropout(0.5)(x)
        outputs = layers.Dense(1)(x)
        model = keras.Model(inputs, outputs)
        callbacks = [keras.callbacks.ModelCheckpoint("jena_lstm.keras", save_best_only=True)]
        """,
        True,
    ),
    "jena_third_edition": (
        """
        import numpy as np
        from tensorflow import keras
        from keras.utils import timeseries_dataset_from_array, to_categorical, pad_sequences
        raw_data = np.arange(200, dtype="float32").reshape(100, 2)
        train_dataset = keras.utils.timeseries_dataset_from_array(
            raw_data[:-5], targets=raw_data[5:, 0], sampling_rate=2, sequence_length=10,
            shuffle=True, batch_size=16, start_index=0, end_index=50)
        keras.utils.set_random_seed(0)
        """,
        False,  # Keras's windows are a tf.data.Dataset: they need TensorFlow
    ),
    "jena_first_edition": (
        """
        from keras.models import Sequential
        from keras import layers
        from keras.optimizers import RMSprop
        model = Sequential()
        model.add(layers.Flatten(input_shape=(240, 14)))
        model.add(layers.Dense(32, activation="relu"))
        model.add(layers.Dense(1))
        model.compile(optimizer=RMSprop(), loss="mae")
        """,
        False,  # Keras 3 warns about `input_shape` on a layer (pytest makes that an error)
    ),
}


def as_rnnkit(source: str) -> str:
    """`source` with the package name changed: `tensorflow.keras` and `keras` become `rnnkit`
    (`from tensorflow import keras` becomes `import rnnkit as keras`, so `keras.X` still reads)."""
    source = textwrap.dedent(source)
    source = source.replace("from tensorflow import keras", "import rnnkit as keras")
    source = re.sub(r"\btensorflow\.keras\b", "rnnkit", source)
    source = re.sub(r"^(\s*from )keras\b", r"\1rnnkit", source, flags=re.MULTILINE)
    return re.sub(r"^(\s*import )keras\b", r"\1rnnkit", source, flags=re.MULTILINE)


def imported_names(source: str) -> list[str]:
    """The names a block's `from ... import a, b` lines bind."""
    names = []
    for match in re.finditer(r"^\s*from \S+ import (.+)$", source, flags=re.MULTILINE):
        names.extend(name.strip() for name in match.group(1).split(","))
    return names


def test_as_rnnkit_changes_only_the_package_name():
    source = "from keras.layers import LSTM\nimport keras.datasets.imdb\nx = keras_model\n"
    assert as_rnnkit(source) == "from rnnkit.layers import LSTM\nimport rnnkit.datasets.imdb\n" + (
        "x = keras_model\n"
    )
    assert as_rnnkit("from tensorflow.keras import layers") == "from rnnkit import layers"


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_runs_with_rnnkit(name):
    source = as_rnnkit(BLOCKS[name][0])
    namespace: dict = {}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    for imported in imported_names(source):
        value = namespace[imported]
        module = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        assert module.startswith("rnnkit") or imported == "np", (imported, module)


@pytest.mark.parametrize("name", sorted(name for name, (_, in_keras) in BLOCKS.items() if in_keras))
def test_block_is_real_keras_code(name):
    """The same block, unchanged apart from TensorFlow's spelling, runs with Keras 3 itself."""
    pytest.importorskip("keras", reason="Keras 3 checks the blocks are Keras code")
    source = textwrap.dedent(BLOCKS[name][0])
    source = source.replace("from tensorflow import keras", "import keras")
    source = re.sub(r"\btensorflow\.keras\b", "keras", source)
    exec(compile(source, f"<keras {name}>", "exec"), {})


def test_module_paths_are_real_modules():
    """Keras's module paths are modules (so `import rnnkit.x.y` works), not only attributes."""
    import rnnkit

    for path in (
        "optimizers",
        "losses",
        "metrics",
        "callbacks",
        "models",
        "layers",
        "preprocessing",
        "preprocessing.sequence",
        "preprocessing.text",
        "datasets",
        "datasets.imdb",
        "utils",
    ):
        module = importlib.import_module(f"rnnkit.{path}")
        assert inspect.ismodule(module)
        assert module.__name__ == f"rnnkit.{path}"
        owner = rnnkit
        for part in path.split("."):
            owner = getattr(owner, part)
        assert owner is module, path


def public_names(module) -> set[str]:
    """The classes and functions a module defines (not those it imports from elsewhere)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


# rnnkit module path: (where rnnkit implements the names, Keras's module with that path)
MODULE_PAIRS = {
    "optimizers": ("rnnkit.training.optimizers", "keras.optimizers"),
    "losses": ("rnnkit.training.losses", "keras.losses"),
    "metrics": ("rnnkit.training.metrics", "keras.metrics"),
    "callbacks": ("rnnkit.training.callbacks", "keras.callbacks"),
    "models": ("rnnkit.models", "keras.models"),
    "layers": ("rnnkit.layers", "keras.layers"),
    "preprocessing.sequence": ("rnnkit.data.sequences", "keras.preprocessing.sequence"),
    "datasets.imdb": ("rnnkit.data.imdb", "keras.datasets.imdb"),
    "utils": ("rnnkit.utils", "keras.utils"),
}


@pytest.mark.parametrize("path", sorted(MODULE_PAIRS))
def test_every_keras_name_rnnkit_has_is_under_keras_path(path):
    pytest.importorskip("keras", reason="Keras 3's module contents are the reference")
    implementation, keras_path = MODULE_PAIRS[path]
    implemented = importlib.import_module(implementation)
    keras_names = set(dir(importlib.import_module(keras_path)))
    names = public_names(implemented) | set(getattr(implemented, "__all__", ()))
    shared = names & keras_names
    assert shared, (path, "rnnkit implements none of Keras's names here?")
    public = importlib.import_module(f"rnnkit.{path}")
    missing = sorted(name for name in shared if not hasattr(public, name))
    assert not missing, f"rnnkit.{path} lacks {missing}, which Keras's {keras_path} has"

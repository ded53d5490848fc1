"""Long-memory tasks: the adding problem and the copy-memory task, generated from a seed.

Both are classic tests of whether a recurrent network can carry information across many
timesteps (Hochreiter & Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016). A model that
remembers nothing has a known error, so a score at that level means "learned nothing long-range":

- adding problem: always answering 1.0 gives MSE = Var(u1 + u2) = 2/12 ≈ 0.167;
- copy memory: guessing the symbols gives cross-entropy log(symbols) on the recall steps.

NumPy only; any number of samples and any sequence length.
"""

from __future__ import annotations

import numpy as np

ADDING_BASELINE_MSE = 1.0 / 6.0
"""MSE of the constant prediction 1.0 on the adding problem: the variance of u1 + u2."""


def _check_int(argument: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"argument `{argument}` must be an integer >= {minimum}, received {value!r}."
        )
    return int(value)


def adding_problem(
    n: int, timesteps: int, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem: find two marked numbers in a long sequence and add them.

    Each sample is a sequence of `timesteps` pairs `(value, marker)`: values are uniform in
    [0, 1); the marker is 1 at exactly two steps, one in the first half
    (`t < timesteps // 2`) and one in the second half, and 0 elsewhere. The target is the sum of
    the two marked values. Always answering 1.0 gives MSE ≈ 0.167 (`ADDING_BASELINE_MSE`).

    Args:
        n: number of samples.
        timesteps: sequence length T (at least 2).
        seed: seed of the generator (default None: fresh randomness each call).

    Returns:
        `(x, y)`: `x (n, timesteps, 2)` float32 (channel 0 the values, channel 1 the markers)
        and `y (n, 1)` float32.

    Example:
        >>> x, y = adding_problem(1000, 100, seed=0)
        >>> x.shape, y.shape
        ((1000, 100, 2), (1000, 1))
    """
    n = _check_int("n", n, 1)
    timesteps = _check_int("timesteps", timesteps, 2)
    rng = np.random.default_rng(seed)
    values = rng.random((n, timesteps))  # (n, T)
    half = timesteps // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, timesteps, size=n)
    rows = np.arange(n)
    markers = np.zeros((n, timesteps))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (n, T, 2)
    y = (values[rows, first] + values[rows, second]).reshape(n, 1).astype(np.float32)
    return x, y


def copy_memory(
    n: int,
    timesteps: int,
    symbols: int = 8,
    length: int = 10,
    seed: int | None = None,
    *,
    one_hot: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The copy-memory task: read a few symbols, wait, then write them back.

    Tokens: 0 is the blank, 1..`symbols` are the data symbols, `symbols + 1` the delimiter.
    Each input sequence has `length + timesteps + 1 + length` steps:

        x:  s1 .. s_length | 0 * timesteps | delimiter | 0 * length
        y:  0 ....................................... 0 | s1 .. s_length

    so the model must output the blank until the delimiter, then the symbols it saw
    `timesteps + length + 1` steps earlier. Guessing the symbols gives cross-entropy
    log(symbols) on the `length` recall steps; a model that also outputs the blanks perfectly
    scores `length * log(symbols) / total_steps` averaged over all steps.

    Args:
        n: number of samples.
        timesteps: number of blank steps T between the symbols and the delimiter (at least 0).
        symbols: number of distinct data symbols (default 8).
        length: number of symbols to remember (default 10).
        seed: seed of the generator (default None: fresh randomness each call).
        one_hot: return `x` one-hot encoded instead of as token ids (default False).

    Returns:
        `(x, y)`: `x (n, steps)` int32 token ids (for an `Embedding` with
        `input_dim = symbols + 2`), or `(n, steps, symbols + 2)` float32 with `one_hot=True`;
        `y (n, steps)` int32 target token per step (for "sparse_categorical_crossentropy" on a
        `return_sequences=True` model), where `steps = timesteps + 2 * length + 1`.

    Example:
        >>> x, y = copy_memory(100, timesteps=50, seed=0)
        >>> x.shape, y.shape
        ((100, 71), (100, 71))
    """
    n = _check_int("n", n, 1)
    timesteps = _check_int("timesteps", timesteps, 0)
    symbols = _check_int("symbols", symbols, 1)
    length = _check_int("length", length, 1)
    rng = np.random.default_rng(seed)
    steps = timesteps + 2 * length + 1
    data = rng.integers(1, symbols + 1, size=(n, length))  # (n, length)
    x = np.zeros((n, steps), dtype=np.int32)
    x[:, :length] = data
    x[:, length + timesteps] = symbols + 1
    y = np.zeros((n, steps), dtype=np.int32)
    y[:, -length:] = data
    if one_hot:
        return np.eye(symbols + 2, dtype=np.float32)[x], y
    return x, y

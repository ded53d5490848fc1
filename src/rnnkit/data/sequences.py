"""`pad_sequences`: turn a list of variable-length sequences into one rectangular array.

Same arguments, defaults and results as Keras's `keras.utils.pad_sequences`, so the book's
`pad_sequences(x_train, maxlen=500)` runs unchanged. NumPy only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

_PADDING_CHOICES = ("pre", "post")


def pad_sequences(
    sequences: Iterable[Any],
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pads (and truncates) sequences to a common length, as `keras.utils.pad_sequences` does.

    Sequences shorter than the target length are filled with `value`; longer ones are cut.
    `padding` and `truncating` say on which side ("pre": the beginning, "post": the end).

    Args:
        sequences: a list (or any iterable) of `num_samples` sequences; each sequence is a list
            or array of scalars, or of equally-shaped vectors (the trailing shape is kept).
        maxlen: length of the output sequences. Default None: the length of the longest
            sequence.
        dtype: dtype of the output (default "int32"). Use `object` to pad variable-length
            strings.
        padding: "pre" (default) or "post": pad before or after each sequence.
        truncating: "pre" (default) or "post": drop values from the beginning or the end of
            sequences longer than `maxlen`.
        value: the padding value (default 0.0, cast to `dtype`).

    Returns:
        Array of shape `(num_samples, maxlen, *trailing_shape)` and dtype `dtype`.

    Raises:
        ValueError: `padding`/`truncating` not "pre" or "post"; `sequences` not a collection of
            sequences; `maxlen` negative; a string `value` with a non-string `dtype`; a sequence
            whose element shape differs from the first non-empty sequence's.
        TypeError: `maxlen` not an int or None.

    Example:
        >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2)
        array([[0, 1],
               [2, 3],
               [5, 6]], dtype=int32)
    """
    for name, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in _PADDING_CHOICES:
            raise ValueError(f'`{name}` must be "pre" or "post"; received {name}={choice!r}.')
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            raise TypeError(f"`maxlen` must be an int or None; received maxlen={maxlen!r}.")
        if maxlen < 0:
            raise ValueError(f"`maxlen` must be >= 0; received maxlen={maxlen}.")
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
        raise ValueError(
            "`sequences` must be a list of sequences; "
            f"received an object of type {type(sequences).__name__}."
        )
    sequences = list(sequences)

    lengths = []
    sample_shape: tuple[int, ...] = ()
    found_non_empty = False
    for position, sequence in enumerate(sequences):
        try:
            length = len(sequence)
        except TypeError as error:
            raise ValueError(
                "`sequences` must be a list of sequences; the element at position "
                f"{position} is not a sequence: {sequence!r}."
            ) from error
        lengths.append(length)
        if length and not found_non_empty:
            # The first non-empty sequence fixes the shape of each element (Keras does the same).
            sample_shape = np.asarray(sequence).shape[1:]
            found_non_empty = True

    if maxlen is None:
        maxlen = max(lengths, default=0)

    is_string_dtype = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_string_dtype:
        raise ValueError(
            f"`dtype` {dtype!r} cannot hold the string `value` {value!r}; "
            "pass dtype=object to pad variable-length strings."
        )

    padded = np.full((len(sequences), maxlen, *sample_shape), value, dtype=dtype)
    for position, (sequence, length) in enumerate(zip(sequences, lengths, strict=True)):
        kept = min(length, maxlen)
        if kept == 0:
            continue
        if truncating == "pre":
            truncated = sequence[length - kept :]
        else:
            truncated = sequence[:kept]
        truncated = np.asarray(truncated, dtype=dtype)
        if truncated.shape[1:] != sample_shape:
            raise ValueError(
                f"Every element of `sequences` must have shape {sample_shape} (the shape of the "
                f"first non-empty sequence's elements); the sequence at position {position} has "
                f"elements of shape {truncated.shape[1:]}."
            )
        if padding == "post":
            padded[position, :kept] = truncated
        else:
            padded[position, maxlen - kept :] = truncated
    return padded

"""`model.summary()`: the Layer (type) / Output Shape / Param # table, as Keras 3 prints it."""

from __future__ import annotations

from typing import Any

from torch import nn


def param_count(layer: nn.Module) -> int | None:
    """Scalars in `layer`'s weights, or None while it is unbuilt."""
    if not getattr(layer, "built", True):
        return None
    return sum(p.numel() for p in layer.parameters())


def format_shape(shape: Any) -> str:
    """`(None, None, 32)`; a list of shapes for several outputs; `?` when unknown."""
    if shape is None:
        return "?"
    if len(shape) and isinstance(shape[0], (tuple, list)):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"


def readable_size(num_bytes: float) -> str:
    """Bytes in B/KB/MB/GB with two decimals (1 KB = 1024 B), as Keras."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} TB"


def format_summary(model: Any, line_length: int | None = None) -> str:
    """The summary table of `model` (anything with `summary_rows()` and `parameters()`)."""
    rows = []
    for name, class_name, shape, count in model.summary_rows():
        params = f"{count:,}" if count is not None else "0 (unbuilt)"
        rows.append((f"{name} ({class_name})", format_shape(shape), params))
    header = ("Layer (type)", "Output Shape", "Param #")
    widths = [
        max(len(header[i]), *(len(row[i]) for row in rows), minimum) + 2
        for i, minimum in enumerate((29, 22, 13))
    ]
    if line_length is not None:
        widths[0] = max(widths[0], line_length - sum(widths[1:]) - 4)

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * width for width in widths) + right

    def cells(values: tuple[str, str, str], bar: str) -> str:
        texts = [
            f" {values[0]:<{widths[0] - 2}} ",
            f" {values[1]:<{widths[1] - 2}} ",
            f" {values[2]:>{widths[2] - 2}} ",
        ]
        return bar + bar.join(texts) + bar

    lines = [f'Model: "{model.name}"', line("┏", "━", "┳", "┓"), cells(header, "┃")]
    lines.append(line("┡", "━", "╇", "┩"))
    for index, row in enumerate(rows):
        if index:
            lines.append(line("├", "─", "┼", "┤"))
        lines.append(cells(row, "│"))
    lines.append(line("└", "─", "┴", "┘"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for label, params in (
        ("Total", trainable + frozen),
        ("Trainable", trainable),
        ("Non-trainable", frozen),
    ):
        count = sum(p.numel() for p in params)
        size = readable_size(sum(p.numel() * p.element_size() for p in params))
        lines.append(f" {label} params: {count:,} ({size})")
    return "\n".join(lines)

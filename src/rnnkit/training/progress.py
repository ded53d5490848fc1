"""Keras 3's progress output for `fit`, `evaluate` and `predict`.

On a terminal, `verbose=1` shows a bar redrawn in place:

    Epoch 3/10
    12/40 ━━━━━━━━━━━━━━━━━━━━ 1s 25ms/step - acc: 0.7012 - loss: 0.5534

and leaves the epoch's totals (with the `val_` metrics) on the line when the epoch ends.
In a Jupyter notebook each epoch is one output (the header and the bar) updated in place through
an IPython display handle, so a saved notebook holds one output per epoch, as Keras's per-epoch
line. When the output is not a terminal (a log file, a pipe, captured output), `verbose=1`
writes only that final line per epoch, without colours or carriage returns. `verbose=2` always
writes one line per epoch: `40/40 - 1s - 25ms/step - acc: 0.7012 - loss: 0.5534 - val_acc: ...`.
The header `Epoch i/n` is printed when `epochs > 1`, as in Keras. In a distributed run only
process 0 prints.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

from rnnkit.training import distributed
from rnnkit.training.callback import Callback, Logs

_BOLD, _GREEN, _GREY, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def _format_value(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return f"{value}"
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def _format_duration(seconds: float) -> str:
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def _format_per_unit(seconds: float, unit: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def is_interactive(stream: IO[str]) -> bool:
    """Whether `stream` can redraw a line in place (a terminal; Jupyter gets a display)."""
    isatty = getattr(stream, "isatty", None)
    return isatty is not None and bool(isatty())


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter kernel, whose outputs can be updated in place.

    IPython is not a dependency of rnnkit: it is looked at only where ipykernel has already been
    imported (by the kernel itself).
    """
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return getattr(shell, "kernel", None) is not None


class _Display:
    """One notebook output, shown once and then updated in place (`display_id=True`)."""

    def __init__(self) -> None:
        self._handle: Any = None

    def show(self, text: str) -> None:
        from IPython.display import Pretty, display

        if self._handle is None:
            sys.stdout.flush()  # what was printed before goes above the display
            self._handle = display(Pretty(text), display_id=True)
        else:
            self._handle.update(Pretty(text))


class Progbar:
    """A progress bar over `target` steps, in Keras's format.

    Args:
        target: total number of steps, or None if unknown.
        width: bar width in characters (default 20).
        verbose: 1 for the bar, 2 for one line when finished, 0 for nothing (default 1).
        stream: where to write (default: `sys.stdout` at the time of writing).
        unit_name: the unit in `25ms/step` (default "step").
        interval: minimum seconds between redraws (default 0.05).

    `update(current, values, finalize=None)`: `current` steps done; `values` a list of
    `(name, value)` shown as given; `finalize` defaults to `current >= target`.

    In a Jupyter kernel, writing to its standard output with `verbose=1`, the bar is one display
    output updated in place, headed by `header` when set (`"Epoch 3/10"`).
    """

    def __init__(
        self,
        target: int | None,
        *,
        width: int = 20,
        verbose: int = 1,
        stream: IO[str] | None = None,
        unit_name: str = "step",
        interval: float = 0.05,
    ) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.stream = stream
        self.unit_name = unit_name
        self.interval = interval
        self.values: dict[str, Any] = {}
        self._start = time.time()
        self._time_after_first_step: float | None = None
        self._last_update = 0.0
        self._previous_width = 0
        self.header: str | None = None
        self._display: _Display | None = None

    def uses_display(self) -> bool:
        """Whether the bar is a notebook display (Jupyter kernel, its stdout, `verbose=1`)."""
        stream = self.stream or sys.stdout
        return self.verbose == 1 and stream is sys.stdout and in_jupyter_kernel()

    def _seconds_per_step(self, current: int, now: float) -> float:
        """Keras's estimate: the first step (often slow: building, caching) is left out."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_step = (now - self._time_after_first_step) / (current - 1)
        else:
            per_step = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_step

    def update(
        self,
        current: int,
        values: list[tuple[str, Any]] | None = None,
        finalize: bool | None = None,
    ) -> None:
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        self.values.update(values or [])
        now = time.time()
        per_step = self._seconds_per_step(current, now)
        stream = self.stream or sys.stdout
        if self.verbose == 1 and self.uses_display():
            if not finalize and now - self._last_update < self.interval:
                return
            line, _ = self._bar_line(current, now, per_step, finalize, colour=False)
            self._display = self._display or _Display()
            self._display.show(line if self.header is None else f"{self.header}\n{line}")
        elif self.verbose == 1:
            interactive = is_interactive(stream)
            if not finalize and (not interactive or now - self._last_update < self.interval):
                return
            line, visible_width = self._bar_line(current, now, per_step, finalize, interactive)
            if interactive:
                padding = " " * max(self._previous_width - visible_width, 0)
                stream.write("\r" + line + padding + ("\n" if finalize else ""))
                self._previous_width = 0 if finalize else visible_width
            else:
                stream.write(line + "\n")
            stream.flush()
        elif self.verbose == 2 and finalize:
            count = self._count(current)
            stream.write(
                f"{count} - {now - self._start:.0f}s - "
                f"{_format_per_unit(per_step, self.unit_name)}{self._metrics()}\n"
            )
            stream.flush()
        self._last_update = now

    def close(self) -> None:
        """Ends a bar line left unfinished (training interrupted mid-epoch)."""
        if self._previous_width and self.verbose == 1:
            stream = self.stream or sys.stdout
            stream.write("\n")
            stream.flush()
            self._previous_width = 0

    def _count(self, current: int) -> str:
        if self.target is None or self.target <= 0:
            return f"{current:7d}/Unknown"
        return f"{current:{int(math.log10(self.target)) + 1}d}/{self.target}"

    def _metrics(self) -> str:
        return "".join(f" - {name}: {_format_value(value)}" for name, value in self.values.items())

    def _bar_line(
        self, current: int, now: float, per_step: float, finalize: bool, colour: bool
    ) -> tuple[str, int]:
        """The bar line, and its width on screen (without colour codes)."""
        count = self._count(current)
        parts = [(count, _BOLD)]
        if self.target is not None and self.target > 0:
            done = int(self.width * min(current / self.target, 1.0))
            parts += [(" ", ""), ("━" * done, _GREEN), ("━" * (self.width - done), _GREY)]
        if self.target is not None and self.target > 0 and not finalize:
            time_text = _format_duration(per_step * (self.target - current))
        else:
            time_text = f"{now - self._start:.0f}s"
        parts += [(" ", ""), (time_text, _BOLD)]
        parts.append((f" {_format_per_unit(per_step, self.unit_name)}{self._metrics()}", ""))
        plain = "".join(text for text, _ in parts)
        if not colour:
            return plain, len(plain)
        coloured = "".join(f"{style}{text}{_RESET}" if style else text for text, style in parts)
        return coloured, len(plain)


class ProgbarLogger(Callback):
    """Prints progress during `fit`, `evaluate` and `predict` (added by them when verbose > 0).

    Args:
        stream: where to write (default: `sys.stdout` at the time of writing).

    Inside `fit`, validation is silent: its results appear on the epoch's line as `val_...`.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.progbar: Progbar | None = None
        self.seen = 0
        self._in_fit = False

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = (1 if verbose == "auto" else verbose) if distributed.is_primary() else 0
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _start(self) -> None:
        self.seen = 0
        self.progbar = Progbar(self.target, verbose=self.verbose, stream=self.stream)

    def _update(self, batch: int, logs: Logs | None) -> None:
        self.seen = batch + 1
        if self.verbose == 1 and self.progbar is not None:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finish(self, logs: Logs | None) -> None:
        if self.progbar is None:
            return
        if self.progbar.target is None:
            self.progbar.target = self.seen
        self.progbar.update(self.progbar.target, list((logs or {}).items()), finalize=True)
        self.progbar = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._in_fit = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._in_fit = False
        if self.progbar is not None:
            self.progbar.close()
            self.progbar = None

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._start()
        if self.verbose and self.epochs > 1:
            header = f"Epoch {epoch + 1}/{self.epochs}"
            if self.progbar is not None and self.progbar.uses_display():
                self.progbar.header = header  # one notebook output per epoch: header and bar
                return
            stream = self.stream or sys.stdout
            stream.write(header + "\n")
            stream.flush()

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._update(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._finish(logs)

    def on_test_begin(self, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._start()

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs: Logs | None = None) -> None:
        self._start()

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._update(batch, None)

    def on_predict_end(self, logs: Logs | None = None) -> None:
        self._finish(None)

"""`MonitorCallback`: the base of the callbacks that watch one logged quantity."""

from __future__ import annotations

import warnings

from rnnkit.training.callback import Callback, Logs


class MonitorCallback(Callback):
    """Shared by callbacks that watch one logged quantity (Keras's `MonitorCallback`).

    `mode="auto"` minimises losses and, for metrics, follows the metric's `direction`
    (accuracies are maximised); anything else needs `mode="min"` or `"max"`.
    """

    def __init__(
        self, monitor: str, mode: str, baseline: float | None = None, min_delta: float = 0.0
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"`mode` must be 'auto', 'min' or 'max'; received mode={mode!r}.")
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self._sign: int | None = None  # -1: lower is better, +1: higher is better

    def _direction(self) -> int:
        if self._sign is None:
            if self.mode != "auto":
                self._sign = -1 if self.mode == "min" else 1
            else:
                name = self.monitor.removeprefix("val_")
                compiled = getattr(self.model, "compiled", None)
                directions = {m.name: m.direction for m in getattr(compiled, "metrics", [])}
                directions["loss"] = "down"
                if name not in directions:
                    raise ValueError(
                        f"{type(self).__name__} cannot tell whether monitor={self.monitor!r} "
                        "should be minimised or maximised: pass mode='min' or mode='max'."
                    )
                self._sign = 1 if directions[name] == "up" else -1
        return self._sign

    def _is_improvement(self, current: float, reference: float | None) -> bool:
        sign = self._direction()  # first, so that an unknown direction fails at once
        if reference is None:
            return True
        if sign > 0:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def _monitored(self, logs: Logs | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} is conditioned on `{self.monitor}`, which is not in "
                f"the logs. Available: {', '.join(logs or {})}.",
                stacklevel=3,
            )
        return value

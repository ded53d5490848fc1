"""`TensorBoard`: Keras's TensorBoard callback, without TensorFlow.

Keras's own callback needs TensorFlow even on its JAX and torch backends. This one writes the
same logs — Keras 3's directories, tags, steps and summary format (tensorboard's "scalars"
tensors and 30-bucket "histograms" tensors, as `tf.summary` writes them) — with the
`tensorboard` package's summaries and event-record framing, so `tensorboard --logdir logs`
shows them (TensorFlow is never imported, even where it is installed):

    log_dir/train/       epoch_loss, epoch_<metric>, epoch_learning_rate   (step: epoch, from 0)
                         batch_loss, batch_<metric>   with update_freq="batch" or N
                                                      (step: training batch, from 1)
                         <model>/<layer>/<weight>/histogram   every histogram_freq epochs
    log_dir/validation/  epoch_loss, epoch_<metric>   (the val_ logs, prefix removed)
                         evaluation_<name>_vs_iterations   at the end of each evaluation

Install with `pip install rnnkit[tensorboard]`. In a distributed run only process 0 writes.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from types import SimpleNamespace
from typing import Any

from rnnkit.training import distributed, optimizers
from rnnkit.training.callback import Callback, Logs

_INSTALL_HINT = "pip install rnnkit[tensorboard]"
_FILE_NUMBERS = itertools.count()  # tells apart files opened within the same second


def _tensorboard_modules() -> SimpleNamespace:
    """The parts of the `tensorboard` package the callback writes with, or an ImportError
    that says what to install."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.histogram import summary_v2 as histogram_summary
        from tensorboard.plugins.scalar import summary_v2 as scalar_summary
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError as error:
        raise ImportError(
            "The TensorBoard callback writes its logs with the `tensorboard` package, which is "
            f"not installed: {_INSTALL_HINT} (or pip install tensorboard)."
        ) from error
    return SimpleNamespace(
        event_pb2=event_pb2,
        histogram_pb=histogram_summary.histogram_pb,
        scalar_pb=scalar_summary.scalar_pb,
        RecordWriter=RecordWriter,
    )


class _EventFile:
    """One event file, named and framed as tensorboard's `EventFileWriter` does.

    That writer opens its file through `tf.io.gfile`, which imports all of TensorFlow whenever
    it is installed; this one opens a plain file and uses tensorboard's record framing and
    protocol buffers, so TensorFlow is never loaded.
    """

    def __init__(self, directory: str, tensorboard: SimpleNamespace) -> None:
        os.makedirs(directory, exist_ok=True)
        name = "events.out.tfevents.%010d.%s.%s.%s" % (  # noqa: UP031 (tensorboard's format)
            time.time(),
            socket.gethostname(),
            os.getpid(),
            next(_FILE_NUMBERS),
        )
        self._event = tensorboard.event_pb2.Event
        self._records = tensorboard.RecordWriter(open(os.path.join(directory, name), "wb"))
        self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_summary(self, summary: Any, step: int) -> None:
        self._write(self._event(wall_time=time.time(), step=step, summary=summary))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        self._records.close()


class TensorBoard(Callback):
    """Logs losses, metrics, the learning rate and weight histograms for TensorBoard.

    Same arguments, directories and tags as `keras.callbacks.TensorBoard` (see the module
    docstring for the layout); no TensorFlow needed.

    Args:
        log_dir: the directory of the logs (default "logs"); `train/` and `validation/` are
            created inside it when first written. Use one directory per run.
        histogram_freq: every how many epochs to write a histogram of each weight (epochs 0,
            `histogram_freq`, 2 * `histogram_freq`, ... counted from 0); default 0: never.
        write_graph: Keras's argument, accepted so Keras code runs. No graph is written:
            rnnkit runs eager PyTorch with no traced graph to show (as Keras 3 itself writes
            none on its JAX and torch backends), and it writes no Keras model-config summary.
        write_images: must be False (weight images are not supported).
        write_steps_per_second: also log `steps_per_second` per epoch (and
            `batch_steps_per_second` with batch logging); default False.
        update_freq: "epoch" (default): scalars once per epoch; "batch" or an int N: also
            `batch_<name>` scalars (the running means `fit` reports) every N training batches.
            Every epoch's scalars and histograms are written whatever N is (Keras 3 on
            TensorFlow drops those of an epoch whose last batch number N does not divide).
        profile_batch: must be 0 (Keras cannot profile on its torch backend either).
        embeddings_freq: must be 0 (the embedding projector is not supported).
        embeddings_metadata: must be None.

    Raises:
        ValueError: a bad `histogram_freq` or `update_freq`, or an unsupported feature asked for.
        ImportError: the `tensorboard` package is missing (`pip install rnnkit[tensorboard]`).

    Example:
        >>> model.fit(x, y, epochs=5, validation_split=0.2,
        ...           callbacks=[TensorBoard(log_dir="logs", histogram_freq=1)])  # doctest: +SKIP
        >>> # then: tensorboard --logdir logs
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: str | int = "epoch",
        profile_batch: int = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int):
            raise ValueError(
                f"`histogram_freq` must be an int >= 0; received histogram_freq={histogram_freq!r}."
            )
        if histogram_freq < 0:
            raise ValueError(f"`histogram_freq` must be >= 0; received {histogram_freq}.")
        if update_freq == "batch":
            update_freq = 1
        valid_int = isinstance(update_freq, int) and not isinstance(update_freq, bool)
        if update_freq != "epoch" and not (valid_int and update_freq >= 1):
            raise ValueError(
                '`update_freq` must be "epoch", "batch" or an int >= 1; received '
                f"update_freq={update_freq!r}."
            )
        for name, value, default in (
            ("write_images", write_images, False),
            ("profile_batch", profile_batch, 0),
            ("embeddings_freq", embeddings_freq, 0),
            ("embeddings_metadata", embeddings_metadata, None),
        ):
            if value != default:
                raise ValueError(
                    f"rnnkit's TensorBoard callback does not support `{name}`; leave it at "
                    f"{default!r} (received {name}={value!r})."
                )
        self._tensorboard = _tensorboard_modules()
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self._writers: dict[str, Any] = {}
        self._training = False
        self._global_train_batch = 0
        self._iterations = 0  # training steps seen, Keras's `optimizer.iterations`
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0

    def _writer(self, kind: str) -> Any:
        """The event writer of `log_dir/train` or `log_dir/validation`, opened when needed."""
        if kind not in self._writers:
            self._writers[kind] = _EventFile(os.path.join(self.log_dir, kind), self._tensorboard)
        return self._writers[kind]

    def _scalars(self, kind: str, values: Logs, prefix: str, step: int) -> None:
        writer = self._writer(kind)
        for name, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"TensorBoard can only log numbers; the log {name!r} holds {value!r}."
                ) from None
            writer.add_summary(self._tensorboard.scalar_pb(f"{prefix}{name}", number), step)

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._global_train_batch = 0
        self._training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._training = False
        self._close_writers()

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch_start_time = time.perf_counter()
        self._epoch_start_iterations = self._iterations

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        super().on_train_batch_begin(batch, logs)
        self._global_train_batch += 1
        self._iterations += 1
        self._batch_start_time = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        super().on_train_batch_end(batch, logs)
        if not distributed.is_primary() or self.update_freq == "epoch":
            return
        step = self._global_train_batch
        if step % self.update_freq:
            return
        values = dict(logs or {})
        if self.write_steps_per_second:
            values["steps_per_second"] = 1.0 / (time.perf_counter() - self._batch_start_time)
        self._scalars("train", values, "batch_", step)

    def on_test_end(self, logs: Logs | None = None) -> None:
        if distributed.is_primary() and logs:
            writer = self._writer("validation")
            for name, value in logs.items():
                summary = self._tensorboard.scalar_pb(
                    f"evaluation_{name}_vs_iterations", float(value)
                )
                writer.add_summary(summary, self._iterations)
            writer.flush()
        if not self._training:  # a standalone `evaluate`: no on_train_end will close the file
            self._close_writers()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if not distributed.is_primary():
            return
        logs = logs or {}
        train_logs = {name: value for name, value in logs.items() if not name.startswith("val_")}
        val_logs = {name[4:]: value for name, value in logs.items() if name.startswith("val_")}
        compiled = getattr(self.model, "compiled", None)
        if compiled is not None:
            train_logs["learning_rate"] = optimizers.get_learning_rate(compiled.optimizer)
        if self.write_steps_per_second:
            seconds = time.perf_counter() - self._epoch_start_time
            train_logs["steps_per_second"] = (
                self._iterations - self._epoch_start_iterations
            ) / seconds
        if train_logs:
            self._scalars("train", train_logs, "epoch_", epoch)
        if val_logs:
            self._scalars("validation", val_logs, "epoch_", epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch: int) -> None:
        """One histogram per weight, tagged as Keras tags them: the names of the model, the
        layer, its sublayers (e.g. the cell) and the weight, `sequential/gru/gru_cell/kernel`,
        followed by `/histogram`."""
        writer = self._writer("train")
        model_name = getattr(self.model, "name", type(self.model).__name__.lower())
        layers = getattr(self.model, "layers", None)
        if layers is None:
            layers = [self.model]
            model_name = ""
        for layer in layers:
            for path, parameter in layer.named_parameters():
                tag = "/".join(filter(None, [model_name, *_keras_path(layer, path)]))
                values = parameter.detach().float().cpu().numpy()
                summary = self._tensorboard.histogram_pb(f"{tag}/histogram", values)
                writer.add_summary(summary, epoch)


def _keras_path(layer: Any, parameter_path: str) -> list[str]:
    """`["gru", "gru_cell", "kernel"]` for a layer's parameter `"cell.kernel"`: each module on
    the way is named by its Keras `name` where it has one, else by its attribute."""
    names = [getattr(layer, "name", None) or type(layer).__name__.lower()]
    module = layer
    *attributes, weight = parameter_path.split(".")
    for attribute in attributes:
        module = getattr(module, attribute)
        names.append(getattr(module, "name", None) or attribute)
    return [*names, weight]

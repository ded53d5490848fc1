"""Ctrl-C held back while something must not be left half done.

A KeyboardInterrupt raised in the middle of an optimizer step leaves some weights updated and
others not; raised in the middle of a first import (torch imports `torch._dynamo` and sympy,
about 900 modules, when the first optimizer is built) it leaves half-initialised modules in
`sys.modules`, and every later attempt fails (`module 'sympy' has no attribute 'core'`); raised
while a layer creates its weights it leaves a layer half built. `uninterruptible` defers the
signal to the end of such a block.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Holds back Ctrl-C (SIGINT) until the block ends, then delivers it to the handler that
    was in place (Python's raises KeyboardInterrupt there). Does nothing outside the main
    thread, or where no Python handler is installed."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield  # no Python handler to defer to, or signals cannot be handled in this thread
        return
    received: list[Any] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, received[0])

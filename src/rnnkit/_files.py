"""Files: atomic writes, and one clear error for a file that cannot be decoded.

Every file rnnkit saves (models, weights, ONNX graphs) goes through `atomic_write`: the content is
written to a temporary file beside the target (`.rnnkit-<random>.tmp`) and moved over the target
only when complete, so a crash or a kill mid-save leaves the old file intact. The new file gets
the permissions a plain `open(path, "w")` would give it: the old file's, or for a new file the
default (0o666) less the umask. Temporary files that a killed save left behind are removed by the
next save into the same folder once they are an hour old (only files with our prefix and suffix,
owned by this user: a save still running elsewhere is never touched).

Every loader decodes through `decode_errors`, which turns what the decoders raise on a truncated,
corrupt or hand-edited file (zlib, zipfile, JSON, HDF5, safetensors, pickle) into one
`ValueError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import secrets
import stat
import time
import zipfile
import zlib
from collections.abc import Iterator

TEMPORARY_PREFIX = ".rnnkit-"
# Older versions named the temporary files by what they held (.h5, .onnx); they are ours too.
_TEMPORARY_NAME = re.compile(r"\.rnnkit-[A-Za-z0-9_]{8,}\.(tmp|h5|onnx)")
# A save that has not finished within an hour was killed: no save takes that long.
STALE_AFTER_S = 3600.0


def remove_stale_temporaries(directory: str, older_than_s: float = STALE_AFTER_S) -> list[str]:
    """Removes the temporary files of killed saves in `directory`: our names, this user's,
    last modified more than `older_than_s` seconds ago. Returns the paths removed."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMPORARY_NAME.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime <= older_than_s:
                continue
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                continue
            os.remove(entry.path)
            removed.append(entry.path)
        except OSError:  # gone already, or not ours to remove: leave it
            continue
    return removed


def _naming_target(error: OSError, temporary: str, path: str) -> OSError:
    """`error` reworded to name `path` (what the user asked for) instead of our temporary file."""
    if error.errno is not None and error.strerror:
        return type(error)(error.errno, error.strerror, path)
    return type(error)(f"Cannot write {path!r}: {str(error).replace(temporary, path)}")


def _make_folder(directory: str, path: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(
            errno.ENOTDIR, "Not a directory (a part of the path is a file)", path
        ) from None
    except OSError as error:
        raise type(error)(error.errno, error.strerror, path) from None


def _new_temporary(directory: str) -> str:
    """Creates an empty temporary file in `directory` with a plain `open`'s permissions (0o666
    less the umask, which the OS applies; `tempfile.mkstemp` would make it 0o600)."""
    while True:
        temporary = os.path.join(directory, f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}.tmp")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return temporary
        except FileExistsError:
            continue


def _sync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Yields the path of a temporary file to write; when the block ends without an error, the
    file is synced to disk and moved over `path` (whose folders are created if missing).

    The result has `path`'s old permissions, or a new file's default. On any error the temporary
    file is removed and `path` is left as it was; an `OSError` names `path`, not the temporary.

    Args:
        path: the file to write.

    Raises:
        IsADirectoryError: `path` is a folder.
        NotADirectoryError: a part of `path` is a file.
        OSError: the folder cannot be written (read-only, no permission, disk full).

    Example:
        >>> with atomic_write("model.rnnkit") as temporary:
        ...     with open(temporary, "wb") as file:
        ...         file.write(data)
    """
    path = os.fspath(path)
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "Is a directory (give a file name)", path)
    directory = os.path.dirname(target)
    _make_folder(directory, path)
    remove_stale_temporaries(directory)
    try:
        temporary = _new_temporary(directory)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, path) from None
    try:
        yield temporary
        _sync(temporary)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and temporary in f"{error} {error.filename}":
            raise _naming_target(error, temporary, path) from None
        raise


def _decoder_errors() -> tuple[type[BaseException], ...]:
    """What decoders raise on bytes that are not what they expect (imported lazily: h5py and
    safetensors are not needed to read every file)."""
    errors: list[type[BaseException]] = [
        zlib.error,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        pickle.UnpicklingError,
        OSError,  # h5py's errors on a damaged HDF5 file, and zipfile's bad offsets
    ]
    with contextlib.suppress(ImportError):
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    return tuple(errors)


@contextlib.contextmanager
def decode_errors(path: str, what: str) -> Iterator[None]:
    """Turns a decoder's error inside the block into a `ValueError` naming `path` and `what`
    could not be read (a missing file stays a `FileNotFoundError`).

    zipfile's `NotImplementedError` (an encrypted or unknown compression member) and torch's
    `RuntimeError` on a damaged archive count as decoder errors too.
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except (*_decoder_errors(), NotImplementedError, RuntimeError) as error:
        detail = str(error).splitlines()[0] if str(error) else "no details"
        kind = type(error).__name__
        if type(error).__module__ not in ("builtins", "zipfile", "json.decoder"):
            kind = f"{type(error).__module__}.{kind}"  # zlib.error, safetensors's, ...
        raise ValueError(
            f"{path!r}: cannot read {what}: the file is truncated or corrupt, or not such a file "
            f"({kind}: {detail})."
        ) from None

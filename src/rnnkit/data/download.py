"""`get_file`: fetch a data file once into a local cache, checked by its hash.

The cache lives in `~/.rnnkit/<cache_subdir>/` (the `RNNKIT_HOME` environment variable moves
it). A file already in the cache whose hash matches is used without touching the network.
Otherwise the file is downloaded to `<name>.part` next to its final place; an interrupted HTTP
download resumes from where it stopped (HTTP `Range` request); the finished file is checked
against the expected hash and only then renamed into place with `os.replace`, so the cache never
holds a half-written file under its real name.

NumPy is not needed; the standard library's `urllib` does the transfer (http, https, file).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from rnnkit.cache import cache_root

_CHUNK_BYTES = 1 << 20
_TIMEOUT_SECONDS = 60.0
# Hex digest length -> hash algorithm (Keras's own dataset hashes are SHA-256, a few MD5).
_HASH_BY_LENGTH = {64: "sha256", 32: "md5"}


class DownloadError(ConnectionError):
    """A file could not be fetched (no network, server error, missing source).

    Args:
        origin: the URL that failed.
        target: where the file would have been cached (a copy put there is used as it is).
        reason: what went wrong, in words.

    The message tells a Python caller to pass `path=...`; the command line, which has its own
    option for it, rewords the advice from these attributes.
    """

    def __init__(self, origin: str, target: str | os.PathLike[str], reason: str) -> None:
        self.origin, self.target, self.reason = origin, Path(target), reason
        super().__init__(
            f"Could not download {origin} ({reason}). If you have a copy of the file, put it at "
            f"{self.target}, or pass its local path to the loader with `path=...`."
        )


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes.

    Args:
        path: the file.
        algorithm: "sha256" (default) or "md5".

    Returns:
        The lower-case hex digest.
    """
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def get_file(
    fname: str,
    origin: str,
    file_hash: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_subdir: str = "datasets",
) -> str:
    """Returns the local path of `fname`, downloading it from `origin` when needed.

    Args:
        fname: the file's name in the cache (a bare name, no directories).
        origin: the URL to download from (`https://`, `http://` or `file://`).
        file_hash: expected hex digest, SHA-256 (64 characters) or MD5 (32). Default None: any
            cached file is accepted and a download is not checked.
        cache_dir: the cache root (default: `$RNNKIT_HOME`, else `~/.rnnkit`).
        cache_subdir: folder inside the cache root (default "datasets").

    Returns:
        The path `<cache_dir>/<cache_subdir>/<fname>` as a str.

    Raises:
        ValueError: `fname` has directories in it or is empty, `file_hash` is not a hex digest,
            or the downloaded file's hash differs from `file_hash` (the download is corrupt; it
            is deleted so the next call starts over).
        DownloadError: (a `ConnectionError`) the file could not be fetched; the message says
            where to put a copy by hand.

    Example:
        >>> path = get_file("imdb.npz", "https://storage.googleapis.com/tensorflow/"
        ...                 "tf-keras-datasets/imdb.npz", file_hash="6966...")  # doctest: +SKIP
    """
    fname = os.fspath(fname)
    if not fname or os.path.basename(fname) != fname or fname in (".", ".."):
        raise ValueError(
            "`fname` must be a bare file name (use `cache_dir`/`cache_subdir` for the folder); "
            f"received fname={fname!r}."
        )
    algorithm = None
    if file_hash is not None:
        file_hash = file_hash.lower()
        algorithm = _HASH_BY_LENGTH.get(len(file_hash))
        if algorithm is None or any(c not in "0123456789abcdef" for c in file_hash):
            raise ValueError(
                "`file_hash` must be a SHA-256 (64 hex characters) or MD5 (32) digest; "
                f"received file_hash={file_hash!r}."
            )

    root = cache_root() if cache_dir is None else Path(cache_dir).expanduser()
    directory = root / cache_subdir
    target = directory / fname
    if target.is_file() and (file_hash is None or file_digest(target, algorithm) == file_hash):
        return str(target)

    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    print(f"Downloading data from {origin}")
    _download(origin, partial, target)
    if file_hash is not None:
        received = file_digest(partial, algorithm)
        if received != file_hash:
            partial.unlink()
            raise ValueError(
                f"The download of {origin} is corrupt: expected {algorithm} {file_hash}, "
                f"received {received}. The partial file was deleted; try again."
            )
    os.replace(partial, target)
    return str(target)


def _download(origin: str, partial: Path, target: Path) -> None:
    """Writes the bytes at `origin` into `partial`, resuming an earlier HTTP download."""
    scheme = urllib.parse.urlsplit(origin).scheme.lower()
    offset = partial.stat().st_size if scheme in ("http", "https") and partial.is_file() else 0
    request = urllib.request.Request(origin)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            # 206 Partial Content: the server resumes; anything else sends the whole file.
            mode = "ab" if offset and getattr(response, "status", None) == 206 else "wb"
            announced = response.headers.get("Content-Length")
            received = 0
            with open(partial, mode) as stream:
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                    stream.write(chunk)
                    received += len(chunk)
    except urllib.error.HTTPError as error:
        if offset and error.code == 416:
            return  # Range not satisfiable: the partial file already holds every byte.
        reason = f"HTTP {error.code} {error.reason}"
        raise DownloadError(origin, target, reason) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or repr(error)
        raise DownloadError(origin, target, str(reason)) from error
    if announced is not None and announced.isdigit() and received != int(announced):
        reason = f"the connection closed after {received} of {announced} bytes"
        raise DownloadError(origin, target, reason)

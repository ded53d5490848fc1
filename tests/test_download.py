"""Tests for `rnnkit.data.download.get_file`: cache hits without network, `file://` downloads,
hash checks, clear errors without network, and HTTP resume against a local test server."""

import hashlib
import http.server
import threading
import urllib.error
import urllib.request

import pytest

from rnnkit.data import download
from rnnkit.data.download import DownloadError, cache_root, get_file

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def source(tmp_path):
    """A file to download and its file:// URL."""
    path = tmp_path / "source" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path, path.as_uri()


@pytest.fixture
def no_network(monkeypatch):
    """Every network call fails as it does on a machine without network."""
    calls = []

    def unreachable(request, *args, **kwargs):
        calls.append(request)
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    return calls


def test_file_url_download_lands_in_the_cache(tmp_path, source):
    _, url = source
    cache = tmp_path / "cache"
    path = get_file("data.bin", url, file_hash=PAYLOAD_SHA256, cache_dir=cache)
    assert path == str(cache / "datasets" / "data.bin")
    with open(path, "rb") as stream:
        assert stream.read() == PAYLOAD
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["data.bin"]  # no .part


def test_cached_file_with_matching_hash_needs_no_network(tmp_path, source, no_network):
    cached = tmp_path / "cache" / "sub" / "data.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    path = get_file(
        "data.bin",
        "https://example.invalid/data.bin",
        PAYLOAD_SHA256,
        cache_dir=tmp_path / "cache",
        cache_subdir="sub",
    )
    assert path == str(cached)
    assert no_network == []


def test_cached_file_without_hash_is_trusted(tmp_path, no_network):
    cached = tmp_path / "datasets" / "notes.txt"
    cached.parent.mkdir()
    cached.write_text("anything")
    assert get_file("notes.txt", "https://example.invalid/x", cache_dir=tmp_path) == str(cached)
    assert no_network == []


def test_cache_root_honours_rnnkit_home(tmp_path, monkeypatch, source):
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home"
    path = get_file("data.bin", source[1], PAYLOAD_SHA256)
    assert path == str(tmp_path / "home" / "datasets" / "data.bin")


def test_cache_root_defaults_to_dot_rnnkit(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNKIT_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".rnnkit"


def test_stale_cached_file_is_downloaded_again(tmp_path, source):
    cached = tmp_path / "datasets" / "data.bin"
    cached.parent.mkdir()
    cached.write_bytes(b"an older version")
    get_file("data.bin", source[1], PAYLOAD_SHA256, cache_dir=tmp_path)
    assert cached.read_bytes() == PAYLOAD


def test_md5_hashes_are_accepted(tmp_path, source):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    path = get_file("data.bin", source[1], file_hash=md5.upper(), cache_dir=tmp_path)
    with open(path, "rb") as stream:
        assert stream.read() == PAYLOAD


def test_hash_mismatch_is_a_corrupt_download(tmp_path, source):
    wrong = "0" * 64
    with pytest.raises(ValueError, match="corrupt") as info:
        get_file("data.bin", source[1], file_hash=wrong, cache_dir=tmp_path)
    assert wrong in str(info.value) and PAYLOAD_SHA256 in str(info.value)
    assert list((tmp_path / "datasets").iterdir()) == []  # neither the file nor the .part


def test_file_url_ignores_a_stale_partial_file(tmp_path, source):
    partial = tmp_path / "datasets" / "data.bin.part"
    partial.parent.mkdir()
    partial.write_bytes(b"garbage from an earlier attempt")
    path = get_file("data.bin", source[1], PAYLOAD_SHA256, cache_dir=tmp_path)
    with open(path, "rb") as stream:
        assert stream.read() == PAYLOAD
    assert not partial.exists()


def test_no_network_error_says_how_to_use_a_local_copy(tmp_path, no_network):
    with pytest.raises(DownloadError, match=r"path=") as info:
        get_file("imdb.npz", "https://example.invalid/imdb.npz", cache_dir=tmp_path)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, OSError)
    assert "Network is unreachable" in str(info.value)
    assert str(tmp_path / "datasets" / "imdb.npz") in str(info.value)
    assert len(no_network) == 1


def test_missing_file_url_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="Could not download"):
        get_file("x.bin", (tmp_path / "nothing.bin").as_uri(), cache_dir=tmp_path)


@pytest.mark.parametrize(
    "fname, file_hash, message",
    [
        ("sub/data.bin", None, "fname='sub/data.bin'"),
        ("", None, "fname=''"),
        ("data.bin", "abc", "file_hash='abc'"),
        ("data.bin", "z" * 64, "file_hash="),
    ],
)
def test_bad_arguments(tmp_path, source, fname, file_hash, message):
    with pytest.raises(ValueError, match=message):
        get_file(fname, source[1], file_hash=file_hash, cache_dir=tmp_path)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with HTTP Range support; can cut the first response short."""

    cut_first_response_at = None
    ranges_seen: list = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        start = 0
        header = self.headers.get("Range")
        type(self).ranges_seen.append(header)
        if header:
            start = int(header.removeprefix("bytes=").removesuffix("-"))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
        body = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).cut_first_response_at
        if cut is not None:
            type(self).cut_first_response_at = None
            body = body[:cut]
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    # Reach the local server directly even where an HTTP proxy is configured.
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    RangeHandler.ranges_seen = []
    RangeHandler.cut_first_response_at = None
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/data.bin"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_interrupted_http_download_resumes_with_a_range_request(tmp_path, server):
    RangeHandler.cut_first_response_at = 3000
    with pytest.raises(DownloadError, match="3000 of 10240 bytes"):
        get_file("data.bin", server, PAYLOAD_SHA256, cache_dir=tmp_path)
    partial = tmp_path / "datasets" / "data.bin.part"
    assert partial.stat().st_size == 3000
    assert not (tmp_path / "datasets" / "data.bin").exists()

    path = get_file("data.bin", server, PAYLOAD_SHA256, cache_dir=tmp_path)
    assert RangeHandler.ranges_seen == [None, "bytes=3000-"]
    with open(path, "rb") as stream:
        assert stream.read() == PAYLOAD
    assert not partial.exists()


def test_complete_partial_file_is_finished_after_416(tmp_path, server):
    partial = tmp_path / "datasets" / "data.bin.part"
    partial.parent.mkdir()
    partial.write_bytes(PAYLOAD)
    path = get_file("data.bin", server, PAYLOAD_SHA256, cache_dir=tmp_path)
    assert RangeHandler.ranges_seen == [f"bytes={len(PAYLOAD)}-"]
    with open(path, "rb") as stream:
        assert stream.read() == PAYLOAD


def test_server_that_ignores_range_restarts_the_file(tmp_path, monkeypatch):
    partial = tmp_path / "datasets" / "data.bin.part"
    partial.parent.mkdir()
    partial.write_bytes(b"xxxx")
    requests = []

    class FullResponse:
        status = 200
        headers = {"Content-Length": str(len(PAYLOAD))}

        def __init__(self):
            self.remaining = PAYLOAD

        def read(self, size):
            chunk, self.remaining = self.remaining[:size], self.remaining[size:]
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(request, timeout):
        requests.append(request.get_header("Range"))
        return FullResponse()

    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)
    path = get_file(
        "data.bin", "https://example.invalid/data.bin", PAYLOAD_SHA256, cache_dir=tmp_path
    )
    assert requests == ["bytes=4-"]
    with open(path, "rb") as stream:
        assert stream.read() == PAYLOAD

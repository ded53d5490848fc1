"""`rnnkit.datasets.jena_climate`: the Jena CSV's format read from a small file the tests write
(as a .csv, a .zip like Keras's, and through the download cache with a file:// origin)."""

import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.data import jena_climate
from rnnkit.data.download import DownloadError

# The real file's header, and rows in its format (the values of its first rows as the book
# and the TensorFlow tutorial print them).
HEADER = (
    '"Date Time","p (mbar)","T (degC)","Tpot (K)","Tdew (degC)","rh (%)","VPmax (mbar)",'
    '"VPact (mbar)","VPdef (mbar)","sh (g/kg)","H2OC (mmol/mol)","rho (g/m**3)","wv (m/s)",'
    '"max. wv (m/s)","wd (deg)"'
)
ROWS = [
    "01.01.2009 00:10:00,996.52,-8.02,265.40,-8.90,93.30,3.33,3.11,0.22,1.94,3.12,"
    "1307.75,1.03,1.75,152.30",
    "01.01.2009 00:20:00,996.57,-8.41,265.01,-9.28,93.40,3.23,3.02,0.21,1.89,3.03,"
    "1309.80,0.72,1.50,136.10",
    "01.01.2009 00:30:00,996.53,-8.51,264.91,-9.31,93.90,3.21,3.01,0.20,1.88,3.02,"
    "1310.24,0.19,0.63,171.60",
]
EXPECTED_ROWS = np.array([[float(v) for v in row.split(",")[1:]] for row in ROWS], "float32")


def _write_csv(path, rows=ROWS, header=HEADER):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _write_zip(path, csv_text=None):
    """A zip shaped like Keras's: the CSV plus macOS's `__MACOSX/._` shadow file."""
    csv_text = csv_text if csv_text is not None else "\n".join([HEADER, *ROWS]) + "\n"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(jena_climate.JENA_CSV_NAME, csv_text)
        archive.writestr("__MACOSX/._" + jena_climate.JENA_CSV_NAME, b"\x00\x05\x16\x07")
    return path


def _check_small_series(result):
    columns, timestamps, raw_data, temperature = result
    assert columns == jena_climate.COLUMNS and len(columns) == 14
    assert columns[1] == "T (degC)"
    assert timestamps.tolist() == [row.split(",")[0] for row in ROWS]
    assert raw_data.dtype == np.float32 and raw_data.shape == (3, 14)
    np.testing.assert_array_equal(raw_data, EXPECTED_ROWS)
    np.testing.assert_array_equal(temperature, np.array([-8.02, -8.41, -8.51], "float32"))
    assert result.temperature is temperature and not np.shares_memory(temperature, raw_data)


def test_public_module():
    assert datasets.jena_climate is jena_climate


def test_local_csv(tmp_path):
    _check_small_series(jena_climate.load_data(path=_write_csv(tmp_path / "jena.csv")))


def test_local_zip_read_in_place(tmp_path):
    path = _write_zip(tmp_path / "jena.zip")
    _check_small_series(jena_climate.load_data(path=str(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jena.zip"]  # nothing extracted


def test_windows_row_endings_and_unquoted_header(tmp_path):
    path = tmp_path / "jena.csv"
    path.write_bytes(("\r\n".join([HEADER.replace('"', ""), *ROWS]) + "\r\n").encode())
    _check_small_series(jena_climate.load_data(path=path))


def test_origin_is_the_keras_examples_zip():
    assert jena_climate.JENA_ORIGIN == (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip"
    )


def test_download_goes_through_the_cache_once(tmp_path, monkeypatch):
    (tmp_path / "server").mkdir()
    source = _write_zip(tmp_path / "server" / "jena.zip")
    monkeypatch.setattr(jena_climate, "JENA_ORIGIN", source.as_uri())
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path / "home"))
    _check_small_series(jena_climate.load_data())
    cached = tmp_path / "home" / "datasets" / "jena_climate_2009_2016.csv.zip"
    assert cached.is_file() and not cached.with_name(cached.name + ".part").exists()
    source.unlink()  # a second load needs no source
    _check_small_series(jena_climate.load_data())


def test_no_copy_and_no_network_says_where_to_put_one(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    with pytest.raises(DownloadError, match=r"jena_climate_2009_2016\.csv\.zip.*path="):
        jena_climate.load_data()


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        jena_climate.load_data(path=tmp_path / "nowhere.csv")


def test_truncated_zip_is_refused(tmp_path):
    path = _write_zip(tmp_path / "jena.zip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"jena\.zip"):
        jena_climate.load_data(path=path)


def test_corrupted_member_fails_the_crc_check(tmp_path):
    path = tmp_path / "jena.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(jena_climate.JENA_CSV_NAME, "\n".join([HEADER, *ROWS]) + "\n")
    data = bytearray(path.read_bytes())
    position = data.index(b"996.57")
    data[position : position + 6] = b"999.99"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"damaged zip archive .*CRC"):
        jena_climate.load_data(path=path)


def test_zip_without_exactly_one_csv(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", HEADER)
        archive.writestr("b.csv", HEADER)
    with pytest.raises(ValueError, match=r"exactly one CSV.*a\.csv"):
        jena_climate.load_data(path=path)


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (HEADER.replace("T (degC)", "T (K)"), ROWS, "does not have the Jena climate header"),
        ("Date,Value", ["2009,1.0"], "does not have the Jena climate header"),
        (HEADER, [], "no rows of data"),
        (HEADER, [ROWS[0], ROWS[1].rsplit(",", 1)[0]], "line 3: expected a timestamp and 14"),
        (HEADER, [ROWS[0], ROWS[1] + ",7.0"], "line 3"),
        (HEADER, [ROWS[0].replace("-8.02", "n/a")], "not a timestamp and 14 numbers"),
    ],
)
def test_malformed_csv(tmp_path, header, rows, message):
    path = _write_csv(tmp_path / "bad.csv", rows=rows, header=header)
    with pytest.raises(ValueError, match=message):
        jena_climate.load_data(path=path)


def test_empty_and_binary_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        jena_climate.load_data(path=empty)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"binary\.csv is neither a zip archive nor a UTF-8"):
        jena_climate.load_data(path=binary)

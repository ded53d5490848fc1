"""`rnnkit.datasets.mauna_loa_co2`: the built-in weekly CO2 series, its gaps and its source."""

import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.data import mauna_loa_co2


def test_public_module():
    assert datasets.mauna_loa_co2 is mauna_loa_co2


def test_the_shipped_file_is_statsmodels_csv_unchanged():
    packed = resources.files("rnnkit.data").joinpath(mauna_loa_co2.DATA_FILE).read_bytes()
    assert len(packed) < 20_000
    assert hashlib.sha256(gzip.decompress(packed)).hexdigest() == mauna_loa_co2.CSV_SHA256


def test_weekly_series_from_1958_to_2001():
    dates, co2, measured = mauna_loa_co2.load_data()
    assert dates.shape == co2.shape == measured.shape == (2284,)
    assert dates.dtype == np.dtype("datetime64[D]") and co2.dtype == np.float32
    assert str(dates[0]) == "1958-03-29" and str(dates[-1]) == "2001-12-29"
    assert np.all(np.diff(dates) == np.timedelta64(7, "D"))  # every Saturday, no week skipped
    # The file's first and last rows: 19580329,316.1 and 20011229,371.5.
    assert co2[0] == np.float32(316.1) and co2[-1] == np.float32(371.5)
    assert int(measured.sum()) == 2225 and np.isfinite(co2).all()


def test_gaps_are_filled_linearly_in_time():
    dates, co2, measured = mauna_loa_co2.load_data()
    # The file: 19580503,316.9 / 19580510, (no value) / 19580517,317.5.
    gap = int(np.flatnonzero(dates == np.datetime64("1958-05-10"))[0])
    assert not measured[gap] and measured[gap - 1] and measured[gap + 1]
    assert co2[gap] == pytest.approx((316.9 + 317.5) / 2, abs=1e-4)
    # Five missing weeks (1958-05-31 .. 06-28) between 317.9 and 315.8 (1958-07-05).
    start = int(np.flatnonzero(dates == np.datetime64("1958-05-24"))[0])
    expected = 317.9 + (315.8 - 317.9) * np.arange(1, 6) / 6
    np.testing.assert_allclose(co2[start + 1 : start + 6], expected, atol=1e-4)


def test_without_filling_the_gaps_are_nan():
    _, co2, measured = mauna_loa_co2.load_data(fill_missing=False)
    np.testing.assert_array_equal(np.isnan(co2), ~measured)
    filled = mauna_loa_co2.load_data().co2
    np.testing.assert_array_equal(co2[measured], filled[measured])


def test_source_and_licence_are_named():
    assert "public domain" in mauna_loa_co2.LICENSE.lower()
    assert "Keeling" in mauna_loa_co2.CITATION
    assert "statsmodels" in mauna_loa_co2.__doc__ and "public domain" in mauna_loa_co2.__doc__


def test_declared_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as stream:
        project = tomllib.load(stream)
    package_data = project["tool"]["setuptools"]["package-data"]["rnnkit.data"]
    assert mauna_loa_co2.DATA_FILE in package_data


def test_bad_fill_missing():
    with pytest.raises(TypeError, match="`fill_missing` must be True or False"):
        mauna_loa_co2.load_data(fill_missing="yes")

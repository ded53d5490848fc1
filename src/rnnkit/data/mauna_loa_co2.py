"""Mauna Loa weekly atmospheric CO2, 1958–2001: a real measured series shipped with rnnkit.

2,284 weekly averages of the CO2 concentration (ppmv) measured continuously at the Mauna Loa
Observatory, Hawaii, from 29 March 1958 to 29 December 2001 (every Saturday), with a rising
trend and a yearly cycle: a small series to forecast without any download. 59 weeks have no
measurement; `load_data` fills them by linear interpolation in time unless asked not to.

Source and licence: the file is statsmodels' `co2` dataset (`statsmodels/datasets/co2/co2.csv`,
taken unchanged from statsmodels 0.15.0 and gzipped), which states "This is public domain."
Data obtained by statsmodels from
http://cdiac.ornl.gov/trends/co2/sio-keel-flask/sio-keel-flaskmlo_c.html on 3/15/2014.
Citation: Keeling, C.D. and T.P. Whorf. 2004. Atmospheric CO2 concentrations derived from
flask air samples at sites in the SIO network. In Trends: A Compendium of Data on Global
Change. Carbon Dioxide Information Analysis Center, Oak Ridge National Laboratory, U.S.
Department of Energy, Oak Ridge, Tennessee, U.S.A.
"""

from __future__ import annotations

import csv
import gzip
import io
from importlib import resources
from typing import NamedTuple

import numpy as np

DATA_FILE = "mauna_loa_co2.csv.gz"
# SHA-256 of the uncompressed CSV, as statsmodels 0.15.0 ships it.
CSV_SHA256 = "16695fa2786e53414e5a6b54767a3fdf5de99cfbc68617f69d1362d92776a92f"
LICENSE = "Public domain (statsmodels' co2 dataset: 'This is public domain.')."
CITATION = (
    "Keeling, C.D. and T.P. Whorf. 2004. Atmospheric CO2 concentrations derived from flask air "
    "samples at sites in the SIO network. In Trends: A Compendium of Data on Global Change. "
    "Carbon Dioxide Information Analysis Center, Oak Ridge National Laboratory, U.S. "
    "Department of Energy, Oak Ridge, Tennessee, U.S.A."
)


class MaunaLoaCO2(NamedTuple):
    """The weekly series: `dates, co2, measured = load_data()`.

    Attributes:
        dates: `(2284,)` `datetime64[D]`, the Saturday of each week.
        co2: `(2284,)` float32, CO2 concentration in ppmv (parts per million by volume).
        measured: `(2284,)` bool, False for the 59 weeks without a measurement (filled by
            interpolation, or NaN with `fill_missing=False`).
    """

    dates: np.ndarray
    co2: np.ndarray
    measured: np.ndarray


def load_data(fill_missing: bool = True) -> MaunaLoaCO2:
    """Loads the Mauna Loa weekly CO2 series shipped inside rnnkit (no network).

    Args:
        fill_missing: fill the weeks without a measurement by linear interpolation between the
            nearest measured weeks (default True); False leaves them NaN.

    Returns:
        A `MaunaLoaCO2` named tuple `(dates, co2, measured)`, each of shape `(2284,)`.

    Raises:
        TypeError: `fill_missing` not a bool.

    Example:
        >>> dates, co2, measured = load_data()
        >>> str(dates[0]), round(float(co2[0]), 1), int(measured.sum())
        ('1958-03-29', 316.1, 2225)
    """
    if not isinstance(fill_missing, (bool, np.bool_)):
        raise TypeError(f"`fill_missing` must be True or False; received {fill_missing!r}.")
    data = resources.files("rnnkit.data").joinpath(DATA_FILE).read_bytes()
    text = gzip.decompress(data).decode("ascii")
    rows = list(csv.reader(io.StringIO(text)))[1:]  # header: date,co2
    dates = np.array(
        [f"{date[:4]}-{date[4:6]}-{date[6:]}" for date, _ in rows], dtype="datetime64[D]"
    )
    co2 = np.array([float(value) if value else np.nan for _, value in rows], dtype=np.float32)
    measured = ~np.isnan(co2)
    if fill_missing:
        days = dates.astype(np.int64)
        co2[~measured] = np.interp(days[~measured], days[measured], co2[measured])
    return MaunaLoaCO2(dates, co2, measured)

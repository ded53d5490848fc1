"""The Jena climate series (2009–2016), the forecasting chapter's data, loaded without pandas.

The Max Planck Institute for Biogeochemistry's weather station in Jena records 14 quantities
(air pressure, temperature, humidity, wind, ...) every 10 minutes; François Chollet cut the
2009–2016 part into `jena_climate_2009_2016.csv` (420,451 rows) for *Deep Learning with
Python*. `load_data` fetches the zip the Keras examples and TensorFlow tutorials use (once,
into rnnkit's cache, see `rnnkit.data.download`), or reads a local `.csv` or `.zip` copy, and
returns what the book's listing builds from it: the column names, the timestamps, the float
`raw_data` of shape `(rows, 14)` and the `temperature` column.

No checksum of the zip is published (Keras's examples download it without one), so the file
is checked by structure instead: a readable zip whose CSV passes zip's CRC-32, the exact
header, and 14 numbers on every row.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import NamedTuple

import numpy as np

from rnnkit.data.download import get_file

JENA_ORIGIN = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip"
)
JENA_ZIP_NAME = "jena_climate_2009_2016.csv.zip"
JENA_CSV_NAME = "jena_climate_2009_2016.csv"
TIME_COLUMN = "Date Time"
# The header of the file, in its order, after "Date Time".
COLUMNS = (
    "p (mbar)",
    "T (degC)",
    "Tpot (K)",
    "Tdew (degC)",
    "rh (%)",
    "VPmax (mbar)",
    "VPact (mbar)",
    "VPdef (mbar)",
    "sh (g/kg)",
    "H2OC (mmol/mol)",
    "rho (g/m**3)",
    "wv (m/s)",
    "max. wv (m/s)",
    "wd (deg)",
)
TEMPERATURE_COLUMN = COLUMNS.index("T (degC)")


class JenaClimate(NamedTuple):
    """The Jena series: `columns, timestamps, raw_data, temperature = load_data()`.

    Attributes:
        columns: the 14 measured quantities' names, in the file's order (`"p (mbar)"`, ...).
        timestamps: `(rows,)` str array, the file's "Date Time" (`"01.01.2009 00:10:00"`).
        raw_data: `(rows, 14)` float32, one row per 10 minutes, columns as `columns`.
        temperature: `(rows,)` float32, the "T (degC)" column (`raw_data[:, 1]`, a copy).
    """

    columns: tuple[str, ...]
    timestamps: np.ndarray
    raw_data: np.ndarray
    temperature: np.ndarray


def load_data(path: str | os.PathLike[str] | None = None) -> JenaClimate:
    """Loads the Jena climate series, downloading Keras's copy on first use.

    Args:
        path: a local `jena_climate_2009_2016.csv`, or a `.zip` holding one CSV in that format
            (read in place, nothing extracted). Default None: the zip in rnnkit's cache
            (`~/.rnnkit/datasets`, or `$RNNKIT_HOME/datasets`), downloaded from `JENA_ORIGIN`
            (13.6 MB; an interrupted download resumes) when missing.

    Returns:
        A `JenaClimate` named tuple `(columns, timestamps, raw_data, temperature)`; see its
        attributes for the shapes.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is not a readable zip or CSV, its header is not Jena's, or a row
            does not hold a timestamp and 14 numbers (the message names the file and line).
        DownloadError: (a `ConnectionError`) no copy in the cache and no network; the message
            says where to put one by hand.

    Example:
        >>> columns, timestamps, raw_data, temperature = load_data()  # doctest: +SKIP
        >>> raw_data.shape, columns[1], temperature[:2]  # doctest: +SKIP
        ((420451, 14), 'T (degC)', array([-8.02, -8.41], dtype=float32))
    """
    if path is None:
        path = get_file(JENA_ZIP_NAME, JENA_ORIGIN)
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No file at path={path!r}. Pass a Jena climate .csv or .zip, or leave path=None to "
            "download it."
        )
    text = _read_zipped_csv(path) if zipfile.is_zipfile(path) else _read_csv(path)
    return _parse(text, path)


def _read_csv(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is neither a zip archive nor a UTF-8 CSV file ({error})."
        ) from None


def _read_zipped_csv(path: str) -> str:
    """The text of the one CSV in the zip (macOS's `__MACOSX/` shadow files are skipped)."""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.lower().endswith(".csv")
                and not info.filename.startswith("__MACOSX/")
            ]
            if len(candidates) != 1:
                names = [info.filename for info in archive.infolist()]
                raise ValueError(
                    f"{path} should hold exactly one CSV file ({JENA_CSV_NAME}); it holds {names}."
                )
            with archive.open(candidates[0]) as member:
                # Reading to the end checks the member's CRC-32.
                return io.TextIOWrapper(member, encoding="utf-8").read()
    except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is a damaged zip archive ({error}); delete it and download it again."
        ) from None


def _parse(text: str, path: str) -> JenaClimate:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path} is empty; expected the Jena climate CSV.")
    header = tuple(name.strip().strip('"') for name in lines[0].split(","))
    if header != (TIME_COLUMN, *COLUMNS):
        raise ValueError(
            f"{path} does not have the Jena climate header; expected "
            f"{[TIME_COLUMN, *COLUMNS]}, received {list(header)}."
        )
    rows = lines[1:]
    if not rows:
        raise ValueError(f"{path} has the Jena climate header but no rows of data.")
    expected_commas = len(COLUMNS)
    for number, row in enumerate(rows, start=2):
        if row.count(",") != expected_commas:
            raise ValueError(
                f"{path}, line {number}: expected a timestamp and {len(COLUMNS)} numbers "
                f"separated by commas; received {row!r}."
            )
    timestamps = np.array([row.split(",", 1)[0] for row in rows], dtype=str)
    try:
        raw_data = np.loadtxt(
            rows,
            delimiter=",",
            usecols=range(1, len(COLUMNS) + 1),
            dtype=np.float32,
            ndmin=2,
        )
    except ValueError as error:
        # NumPy's message names the row ("... at row 12, column 3"), counted from the data.
        raise ValueError(
            f"{path} has a row that is not a timestamp and {len(COLUMNS)} numbers (rows counted "
            f"after the header): {error}"
        ) from None
    if raw_data.shape != (len(rows), len(COLUMNS)):
        raise ValueError(
            f"{path}: expected {len(rows)} rows of {len(COLUMNS)} numbers; read an array of "
            f"shape {raw_data.shape}."
        )
    return JenaClimate(COLUMNS, timestamps, raw_data, raw_data[:, TEMPERATURE_COLUMN].copy())

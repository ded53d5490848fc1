"""Ways to damage a zip archive that the tests of every loader share."""

from __future__ import annotations

import pathlib
import struct
import zipfile


def replace_member(path, name: str, data: bytes | None) -> None:
    """Rewrites the archive at `path` with member `name` holding `data` (None: left out)."""
    with zipfile.ZipFile(path) as archive:
        members = {item: archive.read(item) for item in archive.namelist()}
    if data is None:
        members.pop(name)
    else:
        members[name] = data
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for item, content in members.items():
            archive.writestr(item, content)


def break_deflate_stream(path, name: str) -> None:
    """Overwrites the start of member `name`'s compressed data with an invalid deflate block
    (block type 3), so that zlib itself fails on it."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    data = bytearray(pathlib.Path(path).read_bytes())
    offset = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[offset + 26 : offset + 30])
    data[offset + 30 + name_length + extra_length] = 0xFF  # BFINAL=1, BTYPE=11: reserved
    pathlib.Path(path).write_bytes(bytes(data))


def mark_strongly_encrypted(path) -> None:
    """Sets the 'strong encryption' flag (bit 6) of every member in the central directory."""
    data = bytearray(pathlib.Path(path).read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        (flags,) = struct.unpack("<H", data[start + 8 : start + 10])
        data[start + 8 : start + 10] = struct.pack("<H", flags | 0x41)
        start += 4
    pathlib.Path(path).write_bytes(bytes(data))

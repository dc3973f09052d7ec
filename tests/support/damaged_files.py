"""Damaged files for the refusal tests: checkpoints that torch still loads but whose checks
must fail."""

from __future__ import annotations

import io
import struct
import zipfile


def flip_tensor_byte(data: bytes) -> bytes:
    """A torch zip checkpoint with one byte flipped inside a tensor's data (its CRC-32 is off)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entry = next(e for e in archive.infolist() if "/data/" in e.filename and e.file_size > 1)
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26 :][:4])
    offset = entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]

"""Read what W&B wrote offline: the ``run-*.wandb`` transaction log of an ``offline-run-*`` folder.

The format is LevelDB's log (https://github.com/google/leveldb/blob/main/doc/log_format.md) with a
7-byte file header (``:W&B``, magic 0xBEE1, version 0); every record is a serialised
``wandb_internal_pb2.Record``. wandb >= 0.19 writes it from Go and ships no Python reader.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    """Every Record in a ``.wandb`` file, checksums verified. Raises ValueError on a bad file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path} is not a W&B transaction log ({ident!r}, {magic:#x}, {version})")
    found, pending, offset = [], b"", HEADER
    while offset + HEADER <= len(data):
        if BLOCK - offset % BLOCK < HEADER:  # a block's tail too short for a header is padding
            offset += BLOCK - offset % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        if kind == 0 and length == 0:
            break  # zero fill at the end of a file still being written
        payload = data[offset + HEADER : offset + HEADER + length]
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != checksum:
            raise ValueError(f"{path}: bad checksum at byte {offset}")
        offset += HEADER + length
        if offset > len(data):
            break  # a record still being written
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


@dataclass
class OfflineRun:
    folder: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def series(self, key: str) -> list[Any]:
        return [row[key] for row in self.history if key in row]


def read_offline_run(folder: Path, *, timeout: float = 60.0) -> OfflineRun:
    """History rows (nested keys joined with "/") and file paths of one offline run.

    ``run.finish()`` returns before W&B's core process has written the last records, so this
    waits (bounded) for the run's ``exit`` record. Raises TimeoutError when it never comes.
    """
    (log,) = folder.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        found = records(log)
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{log} has no exit record after {timeout:.0f} s")
        time.sleep(0.2)
    run = OfflineRun(folder)
    for record in found:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            run.history.append(
                {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "files":
            run.files += [item.path for item in record.files.files]
    return run

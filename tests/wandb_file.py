"""Read back a W&B offline run file (`run-<id>.wandb`), to check what a run really logged.

wandb 0.31 ships no reader for its transaction log. The format is LevelDB's log format: a 7-byte header
(":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of records, each a 7-byte header (crc32, little-endian
length, type: 1 full, 2 first, 3 middle, 4 last) and a slice of a serialised `wandb_internal_pb2.Record`.

`run.finish()` returns before wandb's service has written the file out (seen: a 7-byte file, the header alone,
right after finish; the whole file a moment later), so `records` waits for the run's last record, `exit`.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path, timeout_s: float = 30) -> list[wandb_internal_pb2.Record]:
    """Every record of the file, once its `exit` record is there (within `timeout_s`, else what there is)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = _read(path)
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _read(path: Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if len(data) < 7:  # not written out yet
        return []
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B transaction log"
    out, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # the rest of a block too small for a header is zero padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if (kind == 0 and length == 0) or len(chunk) < length:  # the end, or a record still being written
            break
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def config_and_history(path: Path) -> tuple[dict, list[dict]]:
    """The run's config (merged over its run/config records) and its history rows."""
    config: dict = {}
    history: list[dict] = []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            history.append(
                {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            )
    return config, history

"""Content-addressed stage outputs: hashes, atomic writes, completion markers and locks.

Every stage (world, base model, evaluation, ...) writes into a directory named by a hash of its inputs. The
directory is built under a temporary name and renamed into place only when complete, so a crash never leaves
a half-written result that a rerun could mistake for a finished one. A lock file serialises concurrent jobs
(several sweep arms asking for the same base model): the first builds, the others wait and then reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

MARKER = "_COMPLETE.json"


def content_hash(*parts: Any, length: int = 12) -> str:
    """A short stable hash of JSON-serialisable parts (dict key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def checkpoint_fingerprint(checkpoint: str) -> str:
    """What identifies a checkpoint's weights, for the hashes of the stages that read it: the completion
    marker of the stage that wrote it (hence everything that made it), or else its name (a hub id)."""
    marker = Path(checkpoint).parent / MARKER
    return marker.read_text() if marker.is_file() else str(checkpoint)


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def cached_dir(directory: Path, build: Callable[[Path], None], inputs: dict[str, Any]) -> Path:
    """Return `directory`, building it with `build(tmp_dir)` first unless a completed copy exists.

    `inputs` is recorded in the completion marker so that anyone can see what a cached directory was made from.
    """
    directory = Path(directory)
    if is_complete(directory):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        if is_complete(directory):  # another job finished it while we waited
            return directory
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        try:
            build(tmp)
            atomic_write_json(tmp / MARKER, inputs)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
            if directory.exists():  # an incomplete leftover from a crash before the rename
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `path` in one piece: a reader sees the old file or the new one, never a partial write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]

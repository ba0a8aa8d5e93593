"""The one cached-stage helper, and the atomic file writes every stage and store uses.

A stage (world, base model, tasks, evaluation, generations, training) is a function from inputs to a directory.
`run_stage` names that directory by a hash of everything that determines its content, builds it under a
temporary name and renames it into place only when complete, with a marker file that records the inputs. So:

- a crash never leaves a half-written result that a rerun could take for a finished one;
- a rerun skips every finished stage (resume), and runs that share a stage (the arms of a study, the jobs of a
  sweep) compute it once;
- a lock file serialises concurrent jobs that need the same new stage: the first builds, the others wait.

`LAYOUT` is part of every stage's inputs: bumping it when what a stage writes changes meaning makes every older
cache directory unreachable (ignored, never misread).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

MARKER = "_COMPLETE.json"
# 2: the stage layout of the pipeline redesign (typed config sections, renamed config groups). Caches of layout 1
# (no `layout` key) hash differently and are never matched.
LAYOUT = 2


def content_hash(*parts: Any, length: int = 12) -> str:
    """A short stable hash of JSON-serialisable parts (dict key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def run_stage(
    cache_dir: Path, stage: str, inputs: Mapping[str, Any], build: Callable[[Path], None], label: str = ""
) -> Path:
    """The directory of a stage's output: `<cache_dir>/<stage>/[<label>-]<hash of inputs>`, built with
    `build(tmp_dir)` unless a completed copy exists. `inputs` must name everything that determines the output."""
    inputs = {"layout": LAYOUT, **inputs}
    name = f"{label}-{content_hash(inputs)}" if label else content_hash(inputs)
    return cached_dir(Path(cache_dir) / stage / name, build, inputs)


def checkpoint_fingerprint(checkpoint: str) -> str:
    """What identifies a checkpoint's weights in the inputs of the stages that read it: the completion marker of
    the stage that wrote it (hence everything that made it), or else its name (a hub id or a local directory)."""
    marker = Path(checkpoint).parent / MARKER
    return marker.read_text() if marker.is_file() else str(checkpoint)


def is_complete(directory: Path) -> bool:
    return (Path(directory) / MARKER).is_file()


def cached_dir(directory: Path, build: Callable[[Path], None], inputs: Mapping[str, Any]) -> Path:
    """Return `directory`, building it with `build(tmp_dir)` first unless a completed copy exists. `inputs` is
    recorded in the completion marker, so that a cached directory says what made it."""
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


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]

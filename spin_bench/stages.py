"""The one cached-stage helper, and the atomic file writes every stage and store uses.

A stage (world, base model, tasks, evaluation, generations, training) is a function from inputs to a directory.
`run_stage` names that directory by a hash of everything that determines its content, builds it in a work
directory beside it (`.<name>.partial`) and renames it into place only when complete, with a marker file that
records the inputs. So:

- a crash never leaves a half-written result that a rerun could take for a finished one; what a build keeps in
  the work directory's `resume/` folder (a training stage's checkpoints) survives for the rerun to resume from;
- a rerun skips every finished stage (resume), and runs that share a stage (the arms of a study, the jobs of a
  sweep) compute it once;
- a lock file serialises concurrent jobs that need the same new stage: the first builds, the others wait;
- in a multi-process run (spin_bench/ranks.py) rank 0 decides and publishes; the stage builds on every rank or
  on rank 0 alone, as its caller says.

`LAYOUT` is part of every stage's inputs: bumping it when what a stage writes changes meaning makes every older
cache directory unreachable (ignored, never misread).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from spin_bench import ranks

MARKER = "_COMPLETE.json"
RESUMABLE = "resume"  # the folder of a stage's work directory that survives an interrupted build (checkpoints)
SCRATCH = "scratch"  # a folder of the work directory deleted before publishing (datasets' caches)
# 2: the stage layout of the pipeline redesign (typed config sections, renamed config groups). Caches of layout 1
# (no `layout` key) hash differently and are never matched.
LAYOUT = 2


def content_hash(*parts: Any, length: int = 12) -> str:
    """A short stable hash of JSON-serialisable parts (dict key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def run_stage(cache_dir: Path, stage: str, inputs: Mapping[str, Any], build: Callable[[Path], None], label: str = "",
              every_rank: bool = False) -> Path:  # fmt: skip
    """The directory of a stage's output: `<cache_dir>/<stage>/[<label>-]<hash of inputs>`, built with
    `build(work_dir)` unless a completed copy exists. `inputs` must name everything that determines the output.
    `every_rank`: in a multi-process run every rank calls `build` (training, generation); otherwise rank 0 alone."""
    inputs = {"layout": LAYOUT, **inputs}
    name = f"{label}-{content_hash(inputs)}" if label else content_hash(inputs)
    with ranks.stage(f"{stage}/{name}"):
        return cached_dir(Path(cache_dir) / stage / name, build, inputs, every_rank)


def checkpoint_fingerprint(checkpoint: str) -> str:
    """What identifies a checkpoint's weights in the inputs of the stages that read it: the completion marker of
    the stage that wrote it (hence everything that made it), or else its name (a hub id or a local directory)."""
    marker = Path(checkpoint).parent / MARKER
    return marker.read_text() if marker.is_file() else str(checkpoint)


def is_complete(directory: Path) -> bool:
    return (Path(directory) / MARKER).is_file()


def work_dir(directory: Path) -> Path:
    """Where `directory` is built: the same path on every rank and every attempt, so that a rerun finds what an
    interrupted build kept in its `RESUMABLE` folder."""
    return directory.parent / f".{directory.name}.partial"


def cached_dir(directory: Path, build: Callable[[Path], None], inputs: Mapping[str, Any],
               every_rank: bool = False) -> Path:  # fmt: skip
    """Return `directory`, building it with `build(work_dir)` first unless a completed copy exists. `inputs` is
    recorded in the completion marker, so that a cached directory says what made it.

    The cache decision is rank 0's, under the lock, and every rank follows it. The work directory is cleared of
    everything but `RESUMABLE` (mid-stage checkpoints) before building, and renamed into place by rank 0 when
    every rank's part is done."""
    directory = Path(directory)
    if ranks.broadcast(is_complete(directory)):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory) + ".lock") if ranks.is_main() else contextlib.nullcontext()
    with lock:
        if ranks.broadcast(is_complete(directory)):  # another job finished it while we waited
            return directory
        work = work_dir(directory)
        try:
            if every_rank:
                ranks.on_main(lambda: _clear(work))
                build(work)
                ranks.barrier()  # every rank's files are written
                ranks.on_main(lambda: _publish(work, directory, inputs))
            else:

                def build_alone() -> None:
                    _clear(work)
                    build(work)
                    _publish(work, directory, inputs)

                ranks.on_main(build_alone)
        except BaseException:
            if ranks.is_main():  # nothing half-written stays behind; what a rerun resumes from does
                _clear(work)
                if not any(work.iterdir()):
                    work.rmdir()
            raise
    return directory


def _clear(work: Path) -> None:
    """An empty work directory, but for what an interrupted build kept to resume from."""
    work.mkdir(parents=True, exist_ok=True)
    for entry in work.iterdir():
        if entry.name == RESUMABLE:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _publish(work: Path, directory: Path, inputs: Mapping[str, Any]) -> None:
    for transient in (RESUMABLE, SCRATCH):  # resume state and caches have no use once the stage is complete
        shutil.rmtree(work / transient, ignore_errors=True)
    atomic_write_json(work / MARKER, inputs)
    work.chmod(0o755)
    if directory.exists():  # an incomplete leftover of an older layout
        shutil.rmtree(directory)
    os.replace(work, directory)


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

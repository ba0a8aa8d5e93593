"""The world a study runs in: its datasets, written once as normalised JSONL files in a cached stage directory.

Every split is a JSONL file under `<world>/data/`. Training rows share one schema whatever the source
(spin_bench/data/rows.py): `PromptRow` for SFT data and SPIN prompts, `PairRow` for DPO pairs. The embedded
world also writes held-out evaluation splits (`test`, `test_hard`, `test_mc`), which the embedded lm-eval tasks
read. Later stages receive the `World` (the paths of its files), never the data config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from spin_bench.data import embedded, hub
from spin_bench.data.config import DataConfig, EmbeddedData
from spin_bench.stages import read_jsonl, run_stage


@dataclasses.dataclass(frozen=True)
class World:
    root: Path

    def path(self, split: str) -> Path:
        path = self.root / "data" / f"{split}.jsonl"
        if not path.is_file():
            have = sorted(p.stem for p in (self.root / "data").glob("*.jsonl"))
            raise FileNotFoundError(f"world {self.root} has no split {split!r}; it has {have}")
        return path

    def has(self, split: str) -> bool:
        return (self.root / "data" / f"{split}.jsonl").is_file()

    def rows(self, split: str) -> list[dict[str, Any]]:
        return read_jsonl(self.path(split))


def build_world(data: DataConfig, cache_dir: Path) -> World:
    """Build (or reuse) the world that conf/data describes."""

    def build(tmp: Path) -> None:
        if isinstance(data, EmbeddedData):
            embedded.build(data, tmp)
        else:
            hub.build(data, tmp)

    code = embedded.VERSION if isinstance(data, EmbeddedData) else hub.VERSION
    return World(run_stage(cache_dir, "world", {"data": dataclasses.asdict(data), "code": code}, build, data.name))

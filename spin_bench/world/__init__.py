"""The world a study runs in: its datasets (embedded or hub), as normalised JSONL files in a cached directory.

Every split is a JSONL file under `<world>/data/`. Training rows share one schema whatever the source:
`{"id", "prompt", "response"}` for SFT and SPIN prompts (`response` is the real, human answer) and
`{"id", "prompt", "chosen", "rejected"}` for DPO pairs. The embedded world also writes held-out evaluation splits
(`test`, `test_hard`, `test_mc`), which the embedded lm-eval tasks read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spin_bench.cache import cached_dir, content_hash, read_jsonl


@dataclass(frozen=True)
class World:
    root: Path

    def path(self, split: str) -> Path:
        path = self.root / "data" / f"{split}.jsonl"
        if not path.is_file():
            have = sorted(p.stem for p in (self.root / "data").glob("*.jsonl"))
            raise FileNotFoundError(f"world {self.root} has no split {split!r}; it has {have}")
        return path

    def rows(self, split: str) -> list[dict]:
        return read_jsonl(self.path(split))


def build_world(data: DictConfig, cache_dir: Path) -> World:
    """Build (or reuse) the world that `conf/data` describes."""
    spec = OmegaConf.to_container(data, resolve=True)
    if data.source == "embedded":
        from spin_bench.world import embedded as source
    elif data.source == "hub":
        from spin_bench.world import hub as source
    else:
        raise ValueError(f"data.source must be 'embedded' or 'hub', got {data.source!r}")
    inputs = {"data": spec, "code": source.VERSION}
    directory = Path(cache_dir) / "world" / f"{data.name}-{content_hash(inputs)}"
    return World(cached_dir(directory, lambda tmp: source.build(data, tmp), inputs))

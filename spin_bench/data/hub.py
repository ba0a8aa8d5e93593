"""Writes a paper-scale world from hub datasets, local directories laid out as on the hub, or local files.

SPIN prompts come from an UltraChat-style dataset (`prompt`, `messages`: the first assistant turn is the real
answer); DPO pairs from an UltraFeedback-binarized-style one (`prompt`, `chosen`/`rejected` as message lists
whose last turn is the assistant's). Every row is checked (spin_bench/data/rows.py) before anything is written,
and a bad one is named.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from spin_bench.data.config import DatasetSource, HubData
from spin_bench.data.rows import COLUMNS, Schema, local_rows, normalise
from spin_bench.paths import is_local_path
from spin_bench.stages import write_jsonl

VERSION = "hub-v2"  # v2: local .jsonl/.parquet files read with line-numbered checks


def build(data: HubData, out: Path) -> None:
    sources: dict[Schema, DatasetSource | None] = {"spin_prompts": data.spin_prompts, "dpo_pairs": data.dpo_pairs}
    for schema, source in sources.items():
        if source is not None:
            rows = [normalise(schema, row, i, where) for i, row, where in _rows(schema, source, data.revision)]
            write_jsonl(out / "data" / f"{schema}.jsonl", rows)


def _rows(schema: Schema, source: DatasetSource, revision: str | None) -> Iterator[tuple[int, Mapping[str, Any], str]]:
    """(index, row, where) for the first `source.limit` rows of a local file, or of what `datasets` loads."""
    local = Path(source.path).expanduser()
    if is_local_path(source.path) and local.is_file():
        yield from islice(local_rows(local), source.limit)
        return
    from datasets import load_dataset  # heavy: only for hub ids and hub-layout directories

    dataset = load_dataset(source.path, split=source.split, revision=revision)
    missing = [c for c in COLUMNS[schema] if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"dataset {source.path} [{source.split}] lacks columns {missing}; it has {dataset.column_names}"
        )
    if source.limit:
        dataset = dataset.select(range(min(source.limit, len(dataset))))
    for i, row in enumerate(dataset):
        yield i, row, f"{source.path} [{source.split}] row {i}"

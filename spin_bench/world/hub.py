"""Writes a paper-scale world from hub datasets (or local directories of the same schema).

SPIN prompts come from an UltraChat-style dataset (`prompt`, `messages`: the first assistant turn is the real
answer); DPO pairs from an UltraFeedback-binarized-style one (`prompt`, `chosen`/`rejected` as message lists
whose last turn is the assistant's). Every row is checked before anything is written, and a bad row is named.
"""

from __future__ import annotations

from pathlib import Path

from datasets import load_dataset
from omegaconf import DictConfig

from spin_bench.cache import write_jsonl

VERSION = "hub-v1"


def build(data: DictConfig, out: Path) -> None:
    spin = _load(data.spin_prompts, data.revision, required=("prompt", "messages"))
    write_jsonl(
        out / "data" / "spin_prompts.jsonl", [_spin_row(i, row, data.spin_prompts.path) for i, row in enumerate(spin)]
    )
    if data.get("dpo_pairs"):
        dpo = _load(data.dpo_pairs, data.revision, required=("prompt", "chosen", "rejected"))
        write_jsonl(
            out / "data" / "dpo_pairs.jsonl", [_dpo_row(i, row, data.dpo_pairs.path) for i, row in enumerate(dpo)]
        )


def _load(spec: DictConfig, revision: str | None, required: tuple[str, ...]):
    dataset = load_dataset(spec.path, split=spec.split, revision=revision)
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset {spec.path} [{spec.split}] lacks columns {missing}; it has {dataset.column_names}")
    if spec.get("limit"):
        dataset = dataset.select(range(min(spec.limit, len(dataset))))
    return dataset


def _assistant_text(turns, where: str) -> str:
    if not isinstance(turns, list) or not all(isinstance(t, dict) and {"role", "content"} <= t.keys() for t in turns):
        raise ValueError(f"{where}: expected a list of {{role, content}} messages, got {turns!r:.200}")
    replies = [t["content"] for t in turns if t["role"] == "assistant"]
    if not replies or not replies[0].strip():
        raise ValueError(f"{where}: has no non-empty assistant message")
    return replies[0]


def _prompt_row(i: int, row: dict, source: str, prefix: str) -> tuple[str, dict]:
    """Where a row came from (for errors) and its checked `id` and `prompt`."""
    where = f"{source} row {i}"
    if not isinstance(row["prompt"], str) or not row["prompt"].strip():
        raise ValueError(f"{where}: empty or non-text prompt")
    return where, {"id": row.get("prompt_id") or f"{prefix}-{i}", "prompt": row["prompt"]}


def _spin_row(i: int, row: dict, source: str) -> dict:
    where, out = _prompt_row(i, row, source, "spin")
    return out | {"response": _assistant_text(row["messages"], where)}


def _dpo_row(i: int, row: dict, source: str) -> dict:
    where, out = _prompt_row(i, row, source, "dpo")
    return out | {
        "chosen": _assistant_text(row["chosen"], f"{where} (chosen)"),
        "rejected": _assistant_text(row["rejected"], f"{where} (rejected)"),
    }

"""The rows a world is made of, typed, and the checks that turn a hub or local dataset row into one.

Every training split shares one schema whatever its source: `PromptRow` for SFT data and SPIN prompts
(`response` is the real, human answer) and `PairRow` for DPO pairs. Hub rows come in UltraChat's schema
(`prompt`, `messages`) and UltraFeedback-binarized's (`prompt`, `chosen`, `rejected` as message lists); each is
checked before anything is written, and a bad one is named by where it came from: `<file> line <n>` for a
local JSON Lines file, `<dataset> [<split>] row <i>` otherwise.

Light on purpose (json only; pyarrow only for a local parquet file): the start-up checks read local files with
these functions before any stage runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

from spin_bench.paths import is_local_path


class PromptRow(TypedDict):
    id: str
    prompt: str
    response: str  # the real answer
    answer: NotRequired[int]  # the embedded world's numeric answer


class PairRow(TypedDict):
    id: str
    prompt: str
    chosen: str
    rejected: str


Schema = Literal["spin_prompts", "dpo_pairs"]
COLUMNS: dict[Schema, tuple[str, ...]] = {
    "spin_prompts": ("prompt", "messages"),
    "dpo_pairs": ("prompt", "chosen", "rejected"),
}
LOCAL_SUFFIXES = (".jsonl", ".parquet")


def normalise(schema: Schema, row: Mapping[str, Any], index: int, where: str) -> PromptRow | PairRow:
    """A hub-schema row as a world row; ValueError naming `where` when it does not fit."""
    missing = [c for c in COLUMNS[schema] if c not in row]
    if missing:
        raise ValueError(f"{where}: lacks columns {missing}; it has {sorted(row)}")
    prompt = row["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: empty or non-text prompt")
    row_id = str(row.get("prompt_id") or f"{'spin' if schema == 'spin_prompts' else 'dpo'}-{index}")
    if schema == "spin_prompts":
        return PromptRow(id=row_id, prompt=prompt, response=_assistant_text(row["messages"], where))
    return PairRow(id=row_id, prompt=prompt, chosen=_assistant_text(row["chosen"], f"{where} (chosen)"),
                   rejected=_assistant_text(row["rejected"], f"{where} (rejected)"))  # fmt: skip


def _assistant_text(turns: Any, where: str) -> str:
    if not isinstance(turns, list) or not all(isinstance(t, dict) and {"role", "content"} <= t.keys() for t in turns):
        raise ValueError(f"{where}: expected a list of {{role, content}} messages, got {turns!r:.200}")
    replies = [t["content"] for t in turns if t["role"] == "assistant"]
    if not replies or not isinstance(replies[0], str) or not replies[0].strip():
        raise ValueError(f"{where}: has no non-empty assistant message")
    return replies[0]


def local_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any], str]]:
    """(index, row, where) for each row of a local .jsonl or .parquet file, `where` naming its line (1-based)
    or row; a line that is not a JSON object is a ValueError naming it."""
    if path.suffix == ".jsonl":
        with open(path) as f:
            rows = (line for line in enumerate(f, start=1) if line[1].strip())
            for index, (number, line) in enumerate(rows):
                where = f"{path} line {number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
                yield index, row, where
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield index, row, f"{path} row {index}"
    else:
        raise ValueError(f"{path}: a local dataset file must be {' or '.join(LOCAL_SUFFIXES)}")


def check_local(schema: Schema, path: str) -> None:
    """Fail, naming the file and line, on a local dataset file with a row that does not fit `schema`; a
    missing local path fails too. Directories and hub ids are checked row by row when the world is built."""
    if not is_local_path(path):
        return
    local = Path(path).expanduser()
    if not local.exists():
        raise FileNotFoundError(f"{local}: no such file or directory")
    if local.is_file():
        for index, row, where in local_rows(local):
            normalise(schema, row, index, where)

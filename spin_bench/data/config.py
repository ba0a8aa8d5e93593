"""conf/data: which world a study runs in. `source: embedded` generates the arithmetic world on the spot;
`source: hub` reads hub datasets, local directories laid out as on the hub, or local .jsonl/.parquet files.

Light on purpose (no datasets, no torch): spin_bench/config.py types and checks every section at start-up.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from spin_bench.schema import STRICT, Flag, Integer, Positive


@dataclass(frozen=True, config=STRICT)
class Difficulty:
    """Knobs of one split's problems: how many steps, how large the numbers."""

    min_steps: Positive
    max_steps: Positive
    max_start: Positive  # first number in 1..max_start
    max_operand: Positive  # added / subtracted numbers in 1..max_operand
    multiply: Flag  # "doubles"/"triples" steps (only while the value is <= 10)

    @model_validator(mode="after")
    def _steps_in_order(self) -> Difficulty:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps {self.min_steps} > max_steps {self.max_steps}")
        return self


@dataclass(frozen=True, config=STRICT)
class Splits:
    """Problems per split of the embedded world (all disjoint by question)."""

    sft_train: Positive  # the base model's SFT data
    spin_prompts: Positive  # self-play prompts with their real answers
    dpo_pairs: Positive  # chosen = correct solution, rejected = an arithmetic slip carried through
    valid: Positive  # validation: the base stage's held-out SFT loss, and the tuning suite (valid, valid_hard)
    test: Positive
    test_hard: Positive


@dataclass(frozen=True, config=STRICT)
class EmbeddedData:
    source: Literal["embedded"]
    name: str
    seed: Integer
    difficulty: Difficulty  # sft_train, spin_prompts, dpo_pairs and test
    hard_difficulty: Difficulty  # test_hard: more steps than training shows
    splits: Splits
    mc_choices: Annotated[int, Field(ge=2)]  # arith_mc: the correct solution among (mc_choices - 1) slipped ones
    answer_variation: Flag  # each solution in one of several correct styles (arithmetic.Style); false: one style
    # Where SPIN's prompts and real answers come from: `sft_train` (the paper: a subset of the base model's SFT
    # data, the first `splits.spin_prompts` rows) or `new` (unseen problems of the same distribution).
    spin_prompts_from: Literal["sft_train", "new"]

    @model_validator(mode="after")
    def _spin_prompts_fit(self) -> EmbeddedData:
        if self.spin_prompts_from == "sft_train" and self.splits.spin_prompts > self.splits.sft_train:
            raise ValueError(f"splits.spin_prompts {self.splits.spin_prompts} > splits.sft_train "
                             f"{self.splits.sft_train}: with spin_prompts_from=sft_train they are its "
                             "first rows")  # fmt: skip
        return self

    def split_sizes(self) -> dict[str, int | None]:
        """The splits a method can read, with their rows (the others are the base model's SFT data and tests)."""
        return {"spin_prompts": self.splits.spin_prompts, "dpo_pairs": self.splits.dpo_pairs}


@dataclass(frozen=True, config=STRICT)
class DatasetSource:
    """A dataset `datasets.load_dataset` reads: a hub id (with the world's `revision`), a local directory laid
    out as on the hub, or a local .jsonl/.parquet file; its `split` (not used by a file); its first `limit` rows
    (null: all)."""

    path: Annotated[str, Field(min_length=1)]
    split: str
    limit: Positive | None = None


@dataclass(frozen=True, config=STRICT)
class HubData:
    source: Literal["hub"]
    name: str
    revision: str | None
    spin_prompts: DatasetSource  # UltraChat schema: prompt, messages
    dpo_pairs: DatasetSource | None  # UltraFeedback-binarized schema: prompt, chosen, rejected

    def split_sizes(self) -> dict[str, int | None]:
        """The splits this world has (a null source leaves its split out), with their rows where the config alone
        says (a `limit`); None: known once the world is built."""
        sources = {"spin_prompts": self.spin_prompts, "dpo_pairs": self.dpo_pairs}
        return {name: s.limit for name, s in sources.items() if s is not None}


DataConfig = EmbeddedData | HubData
DATA_SOURCES: dict[str, type[EmbeddedData] | type[HubData]] = {"embedded": EmbeddedData, "hub": HubData}

"""What every typed config section shares: pydantic's settings and the strictly typed numbers and flags.

Each stage's section is a frozen pydantic dataclass (TRL's config-per-trainer pattern, with pydantic doing the
type and range checks that TRL's configs do by hand in `__post_init__`): spin_bench/config.py builds them from
the composed Hydra config and turns every error into one line naming the key, the value and what is allowed.

Numbers and flags are strict: `true` is not the integer 1, `1.5` not a whole number, `1` not a flag (Hydra has
already parsed the command line into those types, so nothing a user means is refused). Text is lenient the other
way: a number given where text is wanted is that text (`study=2024`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, Strict

STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # an unknown key is an error naming it
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict()]  # an integer is a number too
Flag = Annotated[bool, Strict()]
Positive = Annotated[int, Strict(), Field(ge=1)]
NonNegative = Annotated[int, Strict(), Field(ge=0)]
PositiveNumber = Annotated[float, Strict(), Field(gt=0)]
NonNegativeNumber = Annotated[float, Strict(), Field(ge=0)]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]

# Config keys that change how a run executes (checkpoint cadence, how long ranks wait, progress bars), never what
# it computes: not in a training stage's cache key, not an axis of a run's name, free to differ on a rerun.
EXECUTION_ONLY = (
    "engine.checkpoint_steps",
    "engine.checkpoints_kept",
    "engine.timeout_s",
    "engine.progress_bar",
    "generation.progress_bar",
)


def execution_only(section: str) -> frozenset[str]:
    """The EXECUTION_ONLY keys of one config section, without its prefix: what its `spec()` leaves out."""
    return frozenset(key.split(".", 1)[1] for key in EXECUTION_ONLY if key.startswith(f"{section}."))

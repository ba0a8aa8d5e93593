"""What every typed config section shares: pydantic's settings and the constrained numbers.

Each stage's section is a frozen pydantic dataclass (TRL's config-per-trainer pattern, with pydantic doing the
type and range checks that TRL's configs do by hand in `__post_init__`): spin_bench/config.py builds them from
the composed Hydra config and turns every error into one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

STRICT = ConfigDict(extra="forbid")  # an unknown key is an error naming it, never silently ignored
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]

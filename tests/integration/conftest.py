"""The integration tier's one expensive fixture: the smoke study (experiment=smoke: spin, sft, dpo and epochs, two
iterations each, on a shrunk world and model), run once per session through the pipeline.

No test writes into it. Each test module gets its own copy (`smoke`), hard-linked file by file, so a module may
run more studies on top of the cached stages without another module seeing them. Hard links are safe here:
the harness never writes a file in place (every write is a new file renamed over the old one).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from spin_bench.config import RunConfig
from spin_bench.pipeline import RunResult, run
from tests.conftest import make_config

METHODS = ("spin", "sft", "dpo", "epochs")


@dataclasses.dataclass(frozen=True)
class Smoke:
    root: Path  # this module's copy: .cache/ and runs/smoke/<arm>-seed0/
    configs: dict[str, RunConfig]  # per arm, as the pipeline ran it (paths in the session's original root)
    results: dict[str, RunResult]

    def config(self, *overrides: str) -> RunConfig:
        """A smoke config in this copy."""
        return make_config(self.root, "experiment=smoke", *overrides)

    def rows(self, method: str = "spin") -> list[dict]:
        """The arm's result rows, checkpoints in this copy."""
        original = str(self.configs[method].paths.root_dir)
        return [
            {**r, "checkpoint": r["checkpoint"].replace(original, str(self.root))} for r in self.results[method].rows
        ]


@pytest.fixture(scope="session")
def smoke_session(tmp_path_factory) -> tuple[Path, dict[str, RunConfig], dict[str, RunResult]]:
    root = tmp_path_factory.mktemp("smoke")
    configs = {m: make_config(root, "experiment=smoke", f"method={m}") for m in METHODS}
    return root, configs, {m: run(config) for m, config in configs.items()}


@pytest.fixture(scope="module")
def smoke(smoke_session, tmp_path_factory) -> Smoke:
    original, configs, results = smoke_session
    copy = tmp_path_factory.mktemp("smoke-copy")
    shutil.copytree(original, copy, dirs_exist_ok=True, symlinks=True, copy_function=os.link)
    return Smoke(copy, configs, results)

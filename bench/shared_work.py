"""Shared work across the jobs of a sweep: the sweep's wall time against the sum of the same jobs run alone.

    .venv/bin/python bench/shared_work.py                      # SPIN, beta 0.05 / 0.1 / 0.5, T = 1
    .venv/bin/python bench/shared_work.py --values 0.05,0.5 --iterations 2 --logs bench/logs

Every measurement starts from a fresh SPIN_BENCH_ROOT (a cold cache). The sweep is one `spin-bench` multirun
over the beta values: its jobs share the world, tokenizer, base model, the base model's evaluation and its
generations through the stage cache. Each independent run is one of those jobs as its own `spin-bench` command
in its own fresh root, so it pays for all of them itself. Prints each time, the sum and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wall_time import BIN, timed  # noqa: E402 - the sibling benchmark's timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", default="0.05,0.1,0.5", help="the method.beta grid")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=None, help="write each run's output to <logs>/shared-<name>.log")
    args = parser.parse_args()
    # one seed: the default study's seed=0,1,2 would make every command 3 jobs
    common = ["method=spin", f"method.iterations={args.iterations}", "seed=0", "study=bench"]

    def cold(name: str, overrides: list[str]) -> float:
        with tempfile.TemporaryDirectory(prefix="spin-bench-shared-") as root:
            log = args.logs / f"shared-{name}.log" if args.logs else None
            if log:
                log.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "SPIN_BENCH_ROOT": root}
            seconds = timed([str(BIN / "spin-bench"), *common, *overrides], env, log)
        print(f"{name}: {seconds:.1f} s", flush=True)
        return seconds

    sweep = cold("sweep", [f"method.beta={args.values}"])
    alone = [cold(f"beta={value}", [f"method.beta={value}"]) for value in args.values.split(",")]
    print(f"independent runs: sum {sum(alone):.1f} s; sweep {sweep:.1f} s = {sweep / sum(alone):.2f} of the sum "
          f"({sum(alone) - sweep:.1f} s saved)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

"""Wall time of the README's two workloads: the default study (cold: fresh cache) and the default test suite.

    .venv/bin/python bench/wall_time.py --runs 3            # both, median of 3 each
    .venv/bin/python bench/wall_time.py --runs 3 --only study --logs bench/logs   # keep each run's output
    .venv/bin/python bench/wall_time.py --runs 1 --only study --args hydra/launcher=basic   # jobs one at a time

Each study run gets a fresh SPIN_BENCH_ROOT, so it pays for every stage (world, tokenizer, base SFT, DeepSpeed's
JIT op build, evaluation) as a first run on a new machine does. Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str], log: Path | None, cwd: Path = ROOT) -> float:
    start = time.perf_counter()
    with open(log, "w") if log else open(os.devnull, "w") as out:
        subprocess.run(command, cwd=cwd, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["study", "tests"], default=None)
    parser.add_argument("--logs", type=Path, default=None, help="write each run's output to <logs>/<name>-<i>.log")
    parser.add_argument("--args", nargs="*", default=[], help="overrides for the study (spin-bench's arguments)")
    args = parser.parse_args()
    workloads = {
        "study": [str(BIN / "spin-bench"), *args.args],
        "tests": [str(BIN / "pytest"), "-q", "-m", "not slow and not gpu", "-p", "no:cacheprovider"],
    }
    for name, command in workloads.items():
        if args.only and name != args.only:
            continue
        times = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="spin-bench-bench-") as root:
                log = args.logs / f"{name}-{i + 1}.log" if args.logs else None
                if log:
                    log.parent.mkdir(parents=True, exist_ok=True)
                times.append(timed(command, {**os.environ, "SPIN_BENCH_ROOT": root}, log))
            print(f"{name} run {i + 1}: {times[-1]:.1f} s", flush=True)
        print(f"{name}: median {statistics.median(times):.1f} s over {args.runs} runs", flush=True)


if __name__ == "__main__":
    main()

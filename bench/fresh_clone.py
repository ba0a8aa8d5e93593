"""Wall time of a make target on a fresh clone, as CI runs it: `git clone` of a commit into a new directory, then
`make test` there (create .venv, install everything, lint, type-check, both test tiers), or another target.

    .venv/bin/python bench/fresh_clone.py --runs 3                                  # HEAD, median of 3
    .venv/bin/python bench/fresh_clone.py --revs eabe551,HEAD --logs bench/logs     # two commits side by side
    .venv/bin/python bench/fresh_clone.py --revs fc8be5a,HEAD --target setup        # the install alone

Each run gets its own clone and empty package caches (uv's, pip's), so it pays for the downloads a fresh CI
machine pays for. Runs of several commits alternate (a, b, a, b, ...), so that a change in the machine's load
affects both alike. Prints one line per run, each commit's median, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from wall_time import ROOT, timed


def rev_name(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--revs", default="HEAD", help="commits to time, comma-separated")
    parser.add_argument("--target", default="test", help="the make target to time (test, setup, study)")
    parser.add_argument("--logs", type=Path, default=None, help="write each run's output to <logs>/fresh-<rev>-<i>.log")
    args = parser.parse_args()
    revs = [rev_name(rev) for rev in args.revs.split(",")]
    times: dict[str, list[float]] = {rev: [] for rev in revs}
    for i in range(args.runs):
        for rev in revs:
            with tempfile.TemporaryDirectory(prefix="spin-bench-fresh-") as tmp:
                checkout = Path(tmp) / "checkout"
                subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
                subprocess.run(["git", "checkout", "-q", rev], cwd=checkout, check=True)
                env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIN_BENCH_", "VIRTUAL_ENV"))}
                env |= {"UV_CACHE_DIR": f"{tmp}/uv-cache", "PIP_NO_CACHE_DIR": "1"}  # a machine that has seen nothing
                log = args.logs / f"fresh-{rev}-{i + 1}.log" if args.logs else None
                if log:
                    log.parent.mkdir(parents=True, exist_ok=True)
                times[rev].append(timed(["make", args.target], env, log, cwd=checkout))
            print(f"{rev} run {i + 1}: make {args.target} {times[rev][-1]:.1f} s", flush=True)
    medians = {rev: statistics.median(t) for rev, t in times.items()}
    for rev, median in medians.items():
        print(f"{rev}: median {median:.1f} s over {args.runs} runs", flush=True)
    if len(revs) == 2:
        print(f"{revs[1]} / {revs[0]}: {medians[revs[1]] / medians[revs[0]]:.2f}", flush=True)


if __name__ == "__main__":
    main()

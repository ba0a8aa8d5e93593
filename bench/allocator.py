"""What glibc's allocator settings (`spin_bench.paths.MALLOC_TUNABLES`) save a training stage on this machine.

    .venv/bin/python bench/allocator.py --steps 200 --runs 3

Trains the default base stage (the embedded world, tiny-llama, ZeRO-2, one thread, as each job of a default study
has on 2 cores) for `--steps` optimizer steps in a fresh process, once with glibc's default allocator settings and
once with GLIBC_TUNABLES set as `spin-bench` sets it for its jobs, the two taking turns within each round so that a
drift in the machine's speed falls on both alike (and each goes first in turn). Prints each trial (the stage's
seconds, and the page faults and system CPU time the stage took) and the medians with their ratio, and fails if the
two settings trained different models (train loss and held-out curve compared exactly): an allocator changes where
memory comes from, never what is computed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def trial(steps: int) -> dict[str, Any]:
    """One base stage of `steps` steps in this process, in a fresh cache: its seconds, training statistics, and the
    page faults and system time it took."""
    from hydra import compose, initialize_config_module

    from spin_bench.config import load
    from spin_bench.paths import configure_environment

    with tempfile.TemporaryDirectory(prefix="spin-bench-alloc-") as root:
        overrides = [f"paths.root_dir={root}", "method=sft", "seed=0", f"model.base_sft.max_steps={steps}",
                     "engine.progress_bar=false"]  # fmt: skip
        with initialize_config_module("spin_bench.conf", version_base="1.3"):
            config = load(compose("config", overrides=overrides), overrides=overrides)
        configure_environment(ROOT / ".cache", offline=True)  # DeepSpeed's op built once per checkout
        import torch

        from spin_bench.data.world import build_world
        from spin_bench.model.base import build_base

        torch.set_num_threads(1)
        world = build_world(config.data, config.paths.cache_dir)
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        trained = build_base(config.model, world, config.engine, config.paths.cache_dir, config.seed)
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "page_faults": after.ru_minflt - before.ru_minflt,
            "system_s": after.ru_stime - before.ru_stime,
            "model": {key: trained.stats[key] for key in ("steps", "train_loss", "heldout_curve")}}  # fmt: skip


def side_by_side(arms: dict[str, tuple[list[str], dict[str, str]]], runs: int,
                 show: Callable[[str, dict[str, Any]], str]) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Each arm's trial (`python <args>` under its environment, printing its result as JSON on its last line) in a
    fresh process, `runs` rounds, the arms taking turns within each round (each goes first in turn) so that a drift
    in the machine's speed falls on all alike; prints each trial as `show` words it. The trials by arm."""
    trials: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    for run in range(runs):
        order = list(arms.items())
        for name, (args, env) in order if run % 2 == 0 else order[::-1]:
            out = subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True, text=True,
                                 cwd=ROOT).stdout  # fmt: skip
            trials[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {run + 1}, {show(name, trials[name][-1])}", flush=True)
    return trials


def main() -> None:
    from spin_bench.paths import MALLOC_TUNABLES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)  # one trial, in a child
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.steps)))
        return
    base_env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | {"OMP_NUM_THREADS": "1"}
    settings = {"glibc defaults": base_env, "spin-bench's": base_env | {"GLIBC_TUNABLES": MALLOC_TUNABLES}}
    command = [__file__, "--steps", str(args.steps), "--trial"]
    trials = side_by_side({name: (command, env) for name, env in settings.items()}, args.runs,
                          lambda name, t: f"{name}: {t['seconds']:.1f} s, {t['page_faults']:,} page faults, "
                                          f"{t['system_s']:.1f} s system time")  # fmt: skip
    models = {json.dumps(t["model"], sort_keys=True) for runs in trials.values() for t in runs}
    if len(models) != 1:
        sys.exit(f"the settings trained different models: {sorted(models)}")
    medians = {name: statistics.median(t["seconds"] for t in runs) for name, runs in trials.items()}
    default, tuned = medians.values()
    for name, runs in trials.items():
        faults = statistics.median(t["page_faults"] for t in runs)
        print(f"{name}: median {medians[name]:.1f} s over {args.runs} runs, {faults:,.0f} page faults", flush=True)
    print(f"ratio: {tuned / default:.3f} (the same model, to the bit, under both)")


if __name__ == "__main__":
    main()

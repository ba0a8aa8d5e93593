"""What scoring only the labelled positions in TRL's fused LM head saves a training stage on a CPU
(`spin_bench.engine.train.score_label_positions_only`).

    .venv/bin/python bench/fused_head.py --steps 200 --runs 3

Trains the default base stage for `--steps` optimizer steps in a fresh process (bench/allocator.py's `trial`: the
embedded world, tiny-llama, ZeRO-2, one thread, as each job of a default study has on 2 cores, with the allocator
settings `spin-bench` gives its jobs), once as TRL 1.16 does on a CPU (every position scored) and once as
spin-bench does (the labelled positions alone, as TRL does on Triton devices), the two taking turns within each
round. Prints each trial and the medians with their ratio, and how far the two trained models' train loss and last
held-out loss lie apart: the same sums in another order, so equal up to float rounding, not to the bit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import allocator  # noqa: E402 - bench/ is no package: its siblings import once it is on the path


def trial(steps: int, compact: bool) -> dict[str, Any]:
    import spin_bench.engine.train as train

    if not compact:
        train.score_label_positions_only = lambda: None  # TRL's own choice: every position on a CPU
    return allocator.trial(steps)


def main() -> None:
    from spin_bench.paths import MALLOC_TUNABLES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trial", choices=["every", "labelled"], help=argparse.SUPPRESS)  # one trial, in a child
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.steps, compact=args.trial == "labelled")))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", GLIBC_TUNABLES=MALLOC_TUNABLES)
    label = {"every": "every position scored", "labelled": "the labelled positions scored"}  # by the head
    arms = {name: ([__file__, "--steps", str(args.steps), "--trial", name], env) for name in label}
    trials = allocator.side_by_side(arms, args.runs,
                                    lambda name, t: f"{label[name]}: {t['seconds']:.1f} s, train loss "
                                                    f"{t['model']['train_loss']:.10f}, held-out "
                                                    f"{t['model']['heldout_curve'][-1]:.8f}")  # fmt: skip
    medians = {name: statistics.median(t["seconds"] for t in runs) for name, runs in trials.items()}
    for name, median in medians.items():
        print(f"{label[name]}: median {median:.1f} s over {args.runs} runs")
    every, labelled = trials["every"][0]["model"], trials["labelled"][0]["model"]
    print(f"ratio: {medians['labelled'] / medians['every']:.3f}; train loss apart by "
          f"{abs(every['train_loss'] - labelled['train_loss']):.1e}, held-out by "
          f"{abs(every['heldout_curve'][-1] - labelled['heldout_curve'][-1]):.1e}")  # fmt: skip


if __name__ == "__main__":
    main()

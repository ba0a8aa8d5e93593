"""Run directories written with the harness's own writers (results and diagnostics stores, run_info.json), from
seeded random scores: what the analysis layer, the report and the notebooks read, without training anything.

`write_sweep(root)` makes `root/runs` with two studies: `methods` (spin, sft, dpo x seeds 0, 1, iterations 0..2)
and `beta` (spin with method.beta 0.05 and 0.5 as an ablation axis, x seeds 0, 1). Every run scores the
embedded suite's four headline metrics, plus one that is not a headline metric (gsm8k-style flexible filter).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from spin_bench.paths import run_name
from spin_bench.results import diagnostics_store, results_store, write_run_info
from spin_bench.stages import LAYOUT

HEADLINE = ["arith_gen/exact_match,strict-match", "arith_gen_hard/exact_match,strict-match", "arith_mc/acc,none",
            "arith_mc/acc_norm,none"]  # fmt: skip
EXTRA = "arith_gen/exact_match,flexible-extract"  # logged by lm-eval, not a headline number


def write_run(study_dir: Path, method: str, seed: int, axes: dict[str, Any], iterations: int = 2) -> Path:
    run_dir = study_dir / run_name(method, axes, seed)
    rng = random.Random(f"{study_dir.name}/{run_dir.name}")
    held = random.Random(f"{study_dir.name}/{run_dir.name}/held-out")
    identity = {"study": study_dir.name, "method": method, "seed": seed}
    rows, diagnostics = [], []
    for t in range(iterations + 1):
        for key in [*HEADLINE, EXTRA]:
            task, metric = key.split("/")
            rows.append({**identity, "iteration": t, "task": task, "metric": metric, "value": round(rng.random(), 3),
                         "stderr": 0.02, "checkpoint": f"/ckpt/{run_dir.name}/{t}"})  # fmt: skip
        if not t:  # the base stage's record: one curve per seed, whatever the method
            curve = [2.0 - 0.1 * seed, 1.0, 0.99, 0.985]
            base = {"base/epochs": 4, "base/heldout_curve": curve, "base/heldout_loss": curve[-1],
                    "base/recent_gain": 0.015, "base/plateaued": True}  # fmt: skip
            diagnostics.append({**identity, "iteration": 0, **base})
        if t:
            diagnosed = {"train/loss": rng.random(), "train/steps": 3, "generated_chars": 50 + t, "real_chars": 60}
            if method != "sft":
                keys = ("heldout/rewards/accuracies", "heldout/rewards/margins", "train/rewards/accuracies",
                        "train/rewards/margins")  # fmt: skip
                diagnosed |= {key: rng.random() for key in keys}
                diagnosed |= {"heldout/logps/chosen": -rng.random(), "heldout/logps/rejected": -2 * rng.random()}
                # a share of its scored pairs, as TRL logs it (a stream of its own: the scores above stay as they were)
                diagnosed |= {"heldout/rewards/accuracies": held.randint(40, 80) / 100, "heldout/pairs/scored": 100}
            change = held.uniform(-0.05, 0.05)  # the held-out real answers' log p against the base model's
            diagnosed |= {"heldout_real/logp_vs_base": change, "heldout_real/logp_vs_base_se": 0.01,
                          "heldout_real/answers": 200}  # fmt: skip
            diagnostics.append({**identity, "iteration": t, **diagnosed})
    results_store(run_dir).upsert(rows)
    diagnostics_store(run_dir).upsert(diagnostics)
    write_run_info(run_dir, {"layout": LAYOUT, "axes": axes, "config": {"evaluation": {"headline": HEADLINE}}})
    return run_dir


def write_sweep(root: Path) -> Path:
    runs = root / "runs"
    for seed in (0, 1):
        for method in ("spin", "sft", "dpo"):
            write_run(runs / "methods", method, seed, {})
        for beta in (0.05, 0.5):
            write_run(runs / "beta", "spin", seed, {"method.beta": beta})
    return runs

"""`spin-bench`: the Hydra app over spin_bench/conf.

`main` (the console script) checks every job the command would launch (spin_bench/cli/preflight.py) and only
then hands the command line to Hydra, whose jobs each call `run_job`: type and check the job's config, set the
libraries' environment, run the pipeline, print the run's table, return `optimized_metric` to the sweeper.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
from typing import NoReturn

import hydra
from hydra._internal.utils import get_args_parser
from omegaconf import DictConfig

from spin_bench import preemption, ranks
from spin_bench.cli.preflight import preflight
from spin_bench.config import ConfigError, load
from spin_bench.paths import allocator_tunables, configure_environment
from spin_bench.results import final_score

log = logging.getLogger(__name__)


def main() -> None:
    """The console script: check the command's jobs, then run them with Hydra."""
    os.environ["GLIBC_TUNABLES"] = allocator_tunables(os.environ.get("GLIBC_TUNABLES"))  # for the jobs' processes
    args = get_args_parser().parse_args()
    informational = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
    custom_source = args.config_dir or args.config_path  # a config tree of your own: checked as each job starts
    if not informational and not custom_source:
        try:
            preflight(args.overrides, multirun=args.multirun, config_name=args.config_name or "config")
        except ConfigError as err:
            _exit(err)
    app()


@hydra.main(version_base="1.3", config_path="pkg://spin_bench.conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    return run_job(cfg)


def run_job(cfg: DictConfig) -> float | None:
    """One job: its typed config, the libraries' environment (before they are imported), the pipeline. Under
    torchrun or SLURM every rank runs it (spin_bench/ranks.py); rank 0 prints."""
    ranks.adopt_slurm_tasks()
    try:
        config = load(cfg)
    except ConfigError as err:
        _exit(err)
    configure_environment(config.paths.cache_dir, offline=not config.needs_hub())
    from spin_bench.analysis.report import results_table  # heavy: after the environment is set
    from spin_bench.pipeline import run

    _freeze_imports()
    preemption.install()
    try:
        result = run(config)
    except ConfigError as err:  # what only the built world tells (a hub dataset's size)
        _exit(err)
    except preemption.Preempted as stop:
        log.warning("%s: %s; rerun the same command (or let SLURM requeue it) to resume", ranks.describe(), stop)
        preemption.hand_over(stop.signum)
    except ranks.RankFailure as err:
        print(f"spin-bench: error: {err}", file=sys.stderr)
        sys.exit(1)
    if not ranks.is_main():
        return None
    print(results_table(result.rows, config.evaluation.headline))
    print(f"\nresults: {config.paths.run_dir / 'results.jsonl'}\nlast checkpoint: {result.checkpoints[-1]}")
    print(f"world: {result.world.root}")
    if result.lm_eval_command:
        print(f"score any checkpoint the same way with the lm_eval CLI:\n  {result.lm_eval_command}")
    return final_score(result.rows, config.optimized_metric, config.evaluation.headline)


@functools.cache
def _freeze_imports() -> None:
    """Once per process, after the ML stack is imported: move its objects (about half a million, alive until the
    process ends) out of the garbage collector's sight. HF Trainer and accelerate call `gc.collect()` at every
    training stage, and each call scanned them all: about 0.2 s here, at each of some 80 calls in a default study."""
    gc.collect()
    gc.freeze()


def _exit(err: ConfigError) -> NoReturn:
    for line in err.lines:
        print(f"spin-bench: error: {line}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()

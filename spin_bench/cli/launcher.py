"""The order in which the default launcher (conf/hydra/launcher/local.yaml) starts a multirun's jobs.

A job first needs its base model, a cached stage that the first job to need it trains (minutes) while every
other job that needs it waits on the stage's lock. In the sweeper's order (arm by arm, seed by seed) a worker
reaches the second arm of the last seed while that seed's base model is still training on the other worker, and
waits there idle: 74 s of one core in a default study. So the jobs that first need each base model go first, and
then the rest, base model by base model. Which base model a job needs follows from the overrides that the base
stage reads: data, model, engine and seed (spin_bench/model/base.py). Written here because no Hydra sweeper or
launcher orders jobs by the stages they share; the launcher itself is hydra_plugins/spin_bench_launcher.
"""

from __future__ import annotations

from collections.abc import Sequence

BASE_STAGE_KEYS = ("data", "model", "engine", "seed")  # the config the base model depends on


def base_model_of(overrides: Sequence[str]) -> tuple[str, ...]:
    """The overrides of a job that choose its base model (`seed=1`, `model=tiny_l`, `+data.seed=3`)."""
    return tuple(o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".", 1)[0] in BASE_STAGE_KEYS)


def busy_order(job_overrides: Sequence[Sequence[str]]) -> list[int]:
    """The jobs' indices in launch order: the first job of each base model, then the others grouped by base
    model, each group in the sweeper's order."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, overrides in enumerate(job_overrides):
        groups.setdefault(base_model_of(overrides), []).append(index)
    return [jobs[0] for jobs in groups.values()] + [index for jobs in groups.values() for index in jobs[1:]]

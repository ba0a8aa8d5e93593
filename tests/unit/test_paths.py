"""Run identity and the environment: run directories named by the axes that the config lists and the job's
overrides set, worked out without touching the composed config; library caches in the project."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from spin_bench.cli import app as cli
from spin_bench.config import ConfigError, load
from spin_bench.paths import (
    MALLOC_TUNABLES,
    allocator_tunables,
    axes_from_overrides,
    axis_labels,
    configure_environment,
    library_env,
    local_jobs,
    run_name,
)
from tests.conftest import make_cfg, make_config


def test_run_name_carries_method_axes_and_seed(tmp_path):
    assert make_config(tmp_path).paths.run_dir.name == "spin-seed0"
    config = make_config(tmp_path, "method=dpo", "seed=2", "method.beta=0.5", "method.history=null", "engine=zero3")
    assert config.axes == {"method.beta": 0.5, "method.history": None, "engine": "zero3"}
    assert config.paths.run_dir == tmp_path / "runs" / "embedded" / "dpo-beta=0.5-history=null-engine=zero3-seed2"


def test_listed_axes_name_the_run_without_an_override(tmp_path):
    config = make_config(tmp_path, "axes=[method.recipe.learning_rate]")
    assert config.paths.run_dir.name == "spin-learning_rate=3e-06-seed0"


def test_axes_are_worked_out_without_mutating_the_composed_config(tmp_path):
    cfg = make_cfg(tmp_path, "method.beta=0.05")
    before = OmegaConf.to_yaml(cfg)
    config = load(cfg, overrides=["method.beta=0.05"])
    assert config.axes == {"method.beta": 0.05} and config.paths.run_dir.name == "spin-beta=0.05-seed0"
    assert OmegaConf.to_yaml(cfg) == before and list(cfg.axes) == []
    assert config.resolved["axes"] == []  # what run_info.json and W&B record as the config: as composed


def test_a_list_names_the_run_as_the_command_line_spells_it_and_an_empty_section_names_nothing(tmp_path):
    merged = make_config(tmp_path, "experiment=paper", "method=spin", "method.by_iteration={}")  # Hydra merges it
    assert merged.axes == {} and sorted(merged.method.by_iteration) == [2, 3]
    listed = make_config(tmp_path, 'evaluation.headline=["arith_gen/exact_match,strict-match","arith_mc/acc,none"]')
    assert listed.paths.run_dir.name == "spin-headline=[arith_gen_exact_match,strict-match,arith_mc_acc,none]-seed0"


def test_a_number_where_text_is_wanted_is_that_text(tmp_path):
    assert make_config(tmp_path, "study=2024").study == "2024"


def test_a_whole_section_override_names_its_leaves():
    assert axes_from_overrides(["+method.by_iteration={3: {beta: 5.0}}"]) == ["method.by_iteration.3.beta"]


def test_clashing_labels_fall_back_to_the_whole_key():
    assert axis_labels(["method.beta", "method.by_iteration.3.beta", "seed"]) == {
        "method.beta": "method.beta", "method.by_iteration.3.beta": "method.by_iteration.3.beta", "seed": "seed",
    }  # fmt: skip
    assert run_name("spin", {"method.beta": 0.1, "method.by_iteration.3.beta": 5.0}, 0) == (
        "spin-method.beta=0.1-method.by_iteration.3.beta=5.0-seed0"
    )


def test_overrides_that_only_choose_where_and_how_name_no_axis():
    overrides = ["method=spin", "seed=1", "study=s", "experiment=smoke", "hparams_search=optuna", "paths.root_dir=/x",
                 "tracking=none", "tracking.mode=online", "hydra/launcher=joblib", "hydra.verbose=true",
                 "~method.alpha", "method.beta=0.05", "+method.by_iteration.2.beta=5.0", "engine=zero3"]  # fmt: skip
    assert axes_from_overrides(overrides) == ["method.beta", "method.by_iteration.2.beta", "engine"]


@pytest.mark.parametrize(
    ("axes", "message"),
    [("[method.betta]", "axes names 'method.betta', which is not a key"), ("[model.tokenizer]", "without a `name`")],
)
def test_bad_axes_are_named(tmp_path, axes, message):
    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, f"axes={axes}")


def test_library_caches_stay_in_the_project_and_offline_only_when_nothing_needs_the_hub(tmp_path):
    offline, online = library_env(tmp_path, offline=True), library_env(tmp_path, offline=False)
    for key in ("HF_HOME", "TORCH_EXTENSIONS_DIR", "WANDB_CACHE_DIR", "MPLCONFIGDIR", "IPYTHONDIR"):
        assert offline[key].startswith(str(tmp_path)), key
    assert offline["HF_HUB_OFFLINE"] == offline["HF_DATASETS_OFFLINE"] == "1" and "HF_HUB_OFFLINE" not in online
    assert (
        not make_config(tmp_path).needs_hub() and make_config(tmp_path, "experiment=paper", "method=spin").needs_hub()
    )


def test_variables_already_set_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", "/somewhere/else")
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    configure_environment(tmp_path, offline=True)
    assert os.environ["HF_HOME"] == "/somewhere/else" and os.environ["MPLCONFIGDIR"] == str(tmp_path / "matplotlib")


def test_jobs_run_in_parallel_unless_this_process_is_one_rank_of_a_launched_job(monkeypatch):
    for key in ("WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    assert local_jobs() == -1  # this machine: no GPU, not launched: one job per core
    monkeypatch.setenv("WORLD_SIZE", "2")  # a rank of torchrun
    assert local_jobs() == 1
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("SLURM_NTASKS", "4")  # a task of `srun -n 4`
    assert local_jobs() == 1


# A process that allocates 64 MiB in 8 MiB blocks, writes them and frees them, 20 times: the page faults it takes
# (transparent huge pages off for it, so that a page is 4 KiB whatever the host's THP setting).
CHURN = """
import ctypes, resource
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    blocks = [libc.malloc(8 << 20) for _ in range(8)]
    for block in blocks:
        ctypes.memset(block, 1, 8 << 20)
    for block in blocks:
        libc.free(block)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="GLIBC_TUNABLES is glibc's")
def test_the_allocator_settings_keep_freed_memory_mapped():
    """With glibc's defaults, the freed 64 MiB go back to the OS each round and fault in again (16,384 pages a
    round); with MALLOC_TUNABLES they stay in the heap after the first round."""

    def faults(**env: str) -> int:
        own = ("GLIBC_TUNABLES", "LD_PRELOAD")  # another allocator or the user's settings would decide instead
        base = {k: v for k, v in os.environ.items() if k not in own and not k.startswith("MALLOC_")}
        run = subprocess.run([sys.executable, "-c", CHURN], env=base | env, capture_output=True, text=True, check=True)
        return int(run.stdout)

    default, tuned = faults(), faults(GLIBC_TUNABLES=MALLOC_TUNABLES)
    assert default > 10 * 16_384 and tuned < 2 * 16_384, (default, tuned)


def test_spin_bench_gives_its_jobs_the_allocator_settings_beside_a_users_own(monkeypatch):
    seen: list[str | None] = []
    monkeypatch.setattr(cli, "app", lambda: seen.append(os.environ.get("GLIBC_TUNABLES")))
    monkeypatch.setattr(sys, "argv", ["spin-bench", "--cfg", "job"])  # informational: no preflight
    monkeypatch.setenv("GLIBC_TUNABLES", "")
    monkeypatch.delenv("GLIBC_TUNABLES")  # restored (unset) after the test, whatever main sets
    cli.main()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0")
    cli.main()
    assert seen == [
        MALLOC_TUNABLES,
        "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold=33554432",
    ]
    assert allocator_tunables(MALLOC_TUNABLES) == MALLOC_TUNABLES  # a second spin-bench below the first adds nothing

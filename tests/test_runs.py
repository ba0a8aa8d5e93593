"""Run identity: run directories named by the ablation axes, axes read from Hydra overrides, and the refusal to
run another config into an existing run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from spin_bench.cache import read_json
from spin_bench.runs import axes_from_overrides, axis_labels, check_run_dir, run_name
from spin_bench.study import run
from tests.conftest import make_cfg


def test_run_name_carries_method_axes_and_seed(tmp_path):
    assert run_name(make_cfg(tmp_path)) == "spin-seed0"
    cfg = make_cfg(tmp_path, "method=dpo", "seed=2", "axes=[method.beta,method.history,train]", "method.beta=0.5",
                   "method.history=null", "train=zero3")  # fmt: skip
    assert run_name(cfg) == "dpo-beta=0.5-history=null-train=zero3-seed2"
    assert Path(cfg.paths.run_dir) == tmp_path / "runs" / "embedded" / "dpo-beta=0.5-history=null-train=zero3-seed2"


def test_clashing_labels_fall_back_to_the_whole_key():
    assert axis_labels(["method.beta", "method.by_iteration.3.beta", "seed"]) == {
        "method.beta": "method.beta", "method.by_iteration.3.beta": "method.by_iteration.3.beta", "seed": "seed",
    }  # fmt: skip


def test_axes_from_overrides_skip_method_seed_and_where_things_go():
    overrides = ["method=spin", "seed=1", "study=s", "experiment=smoke", "hparams_search=optuna", "paths.root_dir=/x",
                 "logger=none", "hydra/launcher=joblib", "hydra.verbose=true", "~method.alpha",
                 "method.beta=0.05", "+method.by_iteration.2.beta=5.0", "train=zero3"]  # fmt: skip
    assert axes_from_overrides(overrides) == ["method.beta", "method.by_iteration.2.beta", "train.name"]


@pytest.mark.parametrize(
    ("axes", "message"),
    [("[method.betta]", "axes names 'method.betta', which is not a key"), ("[model.tokenizer]", "without a `name`")],
)
def test_bad_axes_are_named(tmp_path, axes, message):
    with pytest.raises(ValueError, match=message):
        run_name(make_cfg(tmp_path, f"axes={axes}"))


def test_another_config_in_the_same_run_dir_names_the_differing_keys():
    old = {"method": {"beta": 0.1, "recipe": {"learning_rate": 1e-5}}, "paths": {"root_dir": "/a"}, "seed": 0}
    new = {"method": {"beta": 0.5, "recipe": {"learning_rate": 1e-5}}, "paths": {"root_dir": "/b"}, "seed": 0}
    check_run_dir({"config": old}, {**old, "paths": {"root_dir": "/b"}}, "d")  # where it is written may differ
    check_run_dir(None, new, "d")  # a new run directory
    with pytest.raises(ValueError, match=r"d holds a run made with another config \(differing keys: method.beta\)"):
        check_run_dir({"config": old}, new, "d")


def test_study_refuses_another_config_before_any_stage(smoke):
    """A changed knob without a new run name would mix two configs' rows in one results file and resume the
    other's W&B run: refused, naming the key, and the run directory is left as it was."""
    _, _, root = smoke
    run(make_cfg(root, "experiment=smoke", "study=guard"))  # every stage cached by the smoke fixture
    info = (root / "runs" / "guard" / "spin-seed0" / "run_info.json").read_text()
    stages = sorted((root / ".cache").glob("*/*/_COMPLETE.json"))
    with pytest.raises(ValueError, match=r"another config \(differing keys: method.recipe.learning_rate\)"):
        run(make_cfg(root, "experiment=smoke", "study=guard", "method.recipe.learning_rate=3e-3"))
    assert (root / "runs" / "guard" / "spin-seed0" / "run_info.json").read_text() == info
    assert sorted((root / ".cache").glob("*/*/_COMPLETE.json")) == stages
    as_axis = run(make_cfg(root, "experiment=smoke", "study=guard", "method.iterations=1", "axes=[method.iterations]"))
    assert {r["iteration"] for r in as_axis} == {0, 1}
    assert read_json(root / "runs" / "guard" / "spin-iterations=1-seed0" / "run_info.json")["axes"] == {
        "method.iterations": 1
    }

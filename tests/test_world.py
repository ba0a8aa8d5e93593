"""World building: files, disjointness of training and test items, caching, the hub loader on a local stand-in."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spin_bench.evaluation import embedded_task_dir, embedded_task_names
from spin_bench.world import build_world
from tests.conftest import make_cfg


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    cfg = make_cfg(root, "experiment=smoke")
    return build_world(cfg.data, root / ".cache"), cfg


def test_no_test_item_appears_in_any_training_split(world):
    world, _ = world
    train = {r["prompt"] for split in ("sft_train", "spin_prompts", "dpo_pairs") for r in world.rows(split)}
    test = {r["question"] for split in ("test", "test_hard", "test_mc") for r in world.rows(split)}
    assert train and test
    assert not train & test
    sizes = [len({r["prompt"] for r in world.rows(s)}) for s in ("sft_train", "spin_prompts", "dpo_pairs")]
    assert sum(sizes) == len(train)  # training splits are disjoint from each other too


def test_split_sizes_and_schema(world):
    world, cfg = world
    for split in ("sft_train", "spin_prompts"):
        rows = world.rows(split)
        assert len(rows) == cfg.data.splits[split]
        assert {"id", "prompt", "response"} <= rows[0].keys()
    pairs = world.rows("dpo_pairs")
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    hard_steps = {r["steps"] for r in world.rows("test_hard")}
    assert min(hard_steps) > cfg.data.difficulty.max_steps  # harder than anything trained on
    for row in world.rows("test_mc"):
        assert len(row["choices"]) == cfg.data.mc_choices
        assert row["choices"][row["gold"]].endswith(f"#### {row['choices'][row['gold']].split('#### ')[1]}")


def test_task_yamls_point_at_this_world(world, tmp_path):
    world, _ = world
    tasks = embedded_task_dir(world, tmp_path)
    assert (
        {p.stem for p in tasks.glob("*.yaml")} == embedded_task_names() == {"arith_gen", "arith_gen_hard", "arith_mc"}
    )
    text = (tasks / "arith_gen.yaml").read_text()
    assert str(world.root / "data" / "test.jsonl") in text
    assert "{data_dir}" not in text


def test_world_is_cached_by_config(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=smoke")
    first = build_world(cfg.data, tmp_path / "c")
    marker = (first.root / "_COMPLETE.json").stat().st_mtime_ns
    assert build_world(cfg.data, tmp_path / "c").root == first.root
    assert (first.root / "_COMPLETE.json").stat().st_mtime_ns == marker  # reused, not rebuilt
    cfg.data.seed = 1
    assert build_world(cfg.data, tmp_path / "c").root != first.root


def _ultrachat_standin(directory, rows, split="train_sft"):
    """A local directory laid out like the hub dataset (data/<split>-00000-of-00001.parquet)."""
    (directory / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(directory / "data" / f"{split}-00000-of-00001.parquet")


def test_hub_world_loads_ultrachat_schema(tmp_path):
    rows = [
        {"prompt": f"q{i}", "prompt_id": f"id{i}", "messages": [
            {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(5)
    ]  # fmt: skip
    _ultrachat_standin(tmp_path / "ultrachat", rows)
    cfg = make_cfg(
        tmp_path, "data=ultrachat", f"data.spin_prompts.path={tmp_path / 'ultrachat'}", "data.dpo_pairs=null"
    )
    cfg.data.spin_prompts.limit = 3
    world = build_world(cfg.data, tmp_path / "c")
    assert world.rows("spin_prompts") == [{"id": f"id{i}", "prompt": f"q{i}", "response": f"a{i}"} for i in range(3)]


def test_hub_world_loads_ultrafeedback_pairs(tmp_path):
    def turns(prompt, answer):
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]

    prompts = [{"prompt": "q", "messages": turns("q", "a")}]
    pairs = [{"prompt": f"p{i}", "chosen": turns(f"p{i}", "good"), "rejected": turns(f"p{i}", "bad")} for i in range(2)]
    _ultrachat_standin(tmp_path / "u", prompts)
    _ultrachat_standin(tmp_path / "f", pairs, split="train_prefs")
    cfg = make_cfg(tmp_path, "data=ultrachat", f"data.spin_prompts.path={tmp_path / 'u'}")
    cfg.data.dpo_pairs.path = str(tmp_path / "f")
    world = build_world(cfg.data, tmp_path / "c")
    assert world.rows("spin_prompts") == [{"id": "spin-0", "prompt": "q", "response": "a"}]
    assert world.rows("dpo_pairs") == [
        {"id": f"dpo-{i}", "prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(2)
    ]


def test_hub_world_names_a_bad_row_and_leaves_nothing_behind(tmp_path):
    rows = [{"prompt": "q", "prompt_id": "x", "messages": [{"role": "user", "content": "q"}]}]  # no assistant turn
    _ultrachat_standin(tmp_path / "ultrachat", rows)
    cfg = make_cfg(
        tmp_path, "data=ultrachat", f"data.spin_prompts.path={tmp_path / 'ultrachat'}", "data.dpo_pairs=null"
    )
    with pytest.raises(ValueError, match="row 0: has no non-empty assistant message"):
        build_world(cfg.data, tmp_path / "c")
    leftovers = [p.name for p in (tmp_path / "c" / "world").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_hub_world_names_missing_columns(tmp_path):
    _ultrachat_standin(tmp_path / "u", [{"text": "no prompt here"}])
    cfg = make_cfg(tmp_path, "data=ultrachat", f"data.spin_prompts.path={tmp_path / 'u'}", "data.dpo_pairs=null")
    with pytest.raises(ValueError, match=r"lacks columns \['prompt', 'messages'\]"):
        build_world(cfg.data, tmp_path / "c")


def test_world_rows_name_a_missing_split(world):
    world, _ = world
    with pytest.raises(FileNotFoundError, match="no split 'nope'"):
        world.path("nope")
    assert json.loads((world.root / "_COMPLETE.json").read_text())["data"]["name"] == "arithmetic"

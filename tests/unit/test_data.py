"""The data stage: the embedded world's files, disjoint splits and caching; the hub loader on local stand-ins
of UltraChat and UltraFeedback (directories laid out as on the hub, and JSON Lines files), bad rows named."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spin_bench.config import ConfigError
from spin_bench.data.world import build_world
from spin_bench.evaluation.config import embedded_task_names
from spin_bench.evaluation.harness import task_dir
from tests.conftest import make_config


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    config = make_config(root, "experiment=smoke")
    return build_world(config.data, root / ".cache"), config


def test_no_test_item_appears_in_any_training_split(smoke_world):
    world, _ = smoke_world
    train = {r["prompt"] for split in ("sft_train", "spin_prompts", "dpo_pairs") for r in world.rows(split)}
    held = {r["question"] for split in ("test", "test_hard", "test_mc", "valid", "valid_hard", "valid_mc")
            for r in world.rows(split)}  # fmt: skip
    assert train and held
    assert not train & held
    test = {r["question"] for split in ("test", "test_hard") for r in world.rows(split)}
    assert not test & {r["question"] for split in ("valid", "valid_hard") for r in world.rows(split)}
    sizes = [len({r["prompt"] for r in world.rows(s)}) for s in ("sft_train", "dpo_pairs")]
    assert sum(sizes) == len(train)  # the SFT data and DPO pairs are disjoint too


def test_spin_prompts_come_from_the_sft_data_by_default_or_are_new(smoke_world, tmp_path):
    world, config = smoke_world
    assert config.data.spin_prompts_from == "sft_train"  # the paper's setting
    sft = world.rows("sft_train")
    assert world.rows("spin_prompts") == sft[: config.data.splits.spin_prompts]  # same prompts, same real answers
    new = build_world(make_config(tmp_path, "experiment=smoke", "data.spin_prompts_from=new").data, tmp_path / ".cache")
    fresh = {r["prompt"] for r in new.rows("spin_prompts")}
    assert len(fresh) == config.data.splits.spin_prompts
    assert not fresh & {r["prompt"] for r in new.rows("sft_train")}


def test_real_answers_vary_in_form_unless_turned_off(smoke_world, tmp_path):
    world, _ = smoke_world
    solutions = [r["response"] for r in world.rows("sft_train")]
    assert sum(" is " in s for s in solutions) > 50 and sum(" = " in s for s in solutions) > 50  # words, equations
    assert sum(s.startswith("Start with") for s in solutions) > 50
    plain = build_world(
        make_config(tmp_path, "experiment=smoke", "data.answer_variation=false").data, tmp_path / ".cache"
    )
    same = plain.rows("sft_train")
    assert [r["prompt"] for r in same] == [r["prompt"] for r in world.rows("sft_train")]  # the same questions
    assert not any(" is " in r["response"] or r["response"].startswith("Start") for r in same)


def test_evaluation_splits_do_not_depend_on_the_size_of_a_training_split(smoke_world, tmp_path):
    world, config = smoke_world
    more = build_world(
        make_config(tmp_path, "experiment=smoke", f"data.splits.dpo_pairs={2 * config.data.splits.dpo_pairs}").data,
        tmp_path / ".cache",
    )
    assert more.root != world.root
    assert len(more.rows("dpo_pairs")) == 2 * len(world.rows("dpo_pairs"))
    for split in ("test", "test_hard", "test_mc", "valid", "valid_hard", "valid_mc", "sft_train"):
        assert more.rows(split) == world.rows(split), split  # the distractors too: each split has its own slips


def test_spin_prompts_larger_than_the_sft_data_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="spin_prompts_from=sft_train"):
        make_config(tmp_path, "experiment=smoke", "data.splits.spin_prompts=500")


def test_split_sizes_and_schema(smoke_world):
    world, config = smoke_world
    for split in ("sft_train", "spin_prompts"):
        rows = world.rows(split)
        assert len(rows) == getattr(config.data.splits, split)
        assert {"id", "prompt", "response"} <= rows[0].keys()
    assert all(p["chosen"] != p["rejected"] for p in world.rows("dpo_pairs"))
    hard_steps = {r["steps"] for r in world.rows("test_hard")}
    assert min(hard_steps) > config.data.difficulty.max_steps  # harder than anything trained on
    for row in world.rows("test_mc"):
        assert len(row["choices"]) == config.data.mc_choices
        assert row["choices"][row["gold"]].endswith(f"#### {row['choices'][row['gold']].split('#### ')[1]}")


def test_task_yamls_point_at_this_world(smoke_world, tmp_path):
    world, config = smoke_world
    tasks = task_dir(config.evaluation, world, tmp_path)
    assert tasks is not None
    assert (
        {p.stem for p in tasks.glob("*.yaml")} == embedded_task_names() == {"arith_gen", "arith_gen_hard", "arith_mc"}
    )
    text = (tasks / "arith_gen.yaml").read_text()
    assert str(world.root / "data" / "test.jsonl") in text and "{data_dir}" not in text


def test_world_is_cached_by_config(tmp_path):
    config = make_config(tmp_path, "experiment=smoke")
    first = build_world(config.data, tmp_path / "c")
    marker = (first.root / "_COMPLETE.json").stat().st_mtime_ns
    assert build_world(config.data, tmp_path / "c").root == first.root
    assert (first.root / "_COMPLETE.json").stat().st_mtime_ns == marker  # reused, not rebuilt
    other = make_config(tmp_path, "experiment=smoke", "data.seed=1")
    assert build_world(other.data, tmp_path / "c").root != first.root


def turns(prompt, answer):
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def hub_layout(directory, rows, split="train_sft"):
    """A local directory laid out like the hub dataset (data/<split>-00000-of-00001.parquet)."""
    (directory / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(directory / "data" / f"{split}-00000-of-00001.parquet")
    return directory


def hub_world(tmp_path, *overrides):
    return make_config(tmp_path, "experiment=paper", "method=spin", *overrides).data


def test_hub_world_loads_ultrachat_schema_from_a_hub_layout(tmp_path):
    rows = [{"prompt": f"q{i}", "prompt_id": f"id{i}", "messages": turns(f"q{i}", f"a{i}")} for i in range(5)]
    path = hub_layout(tmp_path / "ultrachat", rows)
    data = hub_world(
        tmp_path,
        f"data.spin_prompts.path={path}",
        "data.spin_prompts.limit=3",
        "data.dpo_pairs=null",
        "method.heldout=1",
    )
    world = build_world(data, tmp_path / "c")
    assert world.rows("spin_prompts") == [{"id": f"id{i}", "prompt": f"q{i}", "response": f"a{i}"} for i in range(3)]


def test_hub_world_loads_ultrafeedback_pairs_and_local_jsonl_files(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "q", "messages": turns("q", "a")}) + "\n\n")  # a blank line is skipped
    pairs = [{"prompt": f"p{i}", "chosen": turns(f"p{i}", "good"), "rejected": turns(f"p{i}", "bad")} for i in range(2)]
    path = hub_layout(tmp_path / "feedback", pairs, split="train_prefs")
    world = build_world(hub_world(tmp_path, f"data.spin_prompts.path={prompts}", f"data.dpo_pairs.path={path}"),
                        tmp_path / "c")  # fmt: skip
    assert world.rows("spin_prompts") == [{"id": "spin-0", "prompt": "q", "response": "a"}]
    assert world.rows("dpo_pairs") == [
        {"id": f"dpo-{i}", "prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(2)
    ]


def test_hub_world_names_a_bad_row_and_leaves_nothing_behind(tmp_path):
    rows = [{"prompt": "q", "prompt_id": "x", "messages": [{"role": "user", "content": "q"}]}]  # no assistant turn
    path = hub_layout(tmp_path / "ultrachat", rows)
    data = hub_world(tmp_path, f"data.spin_prompts.path={path}", "data.dpo_pairs=null")
    with pytest.raises(ValueError, match=r"\[train_sft\] row 0: has no non-empty assistant message"):
        build_world(data, tmp_path / "c")
    leftovers = [p.name for p in (tmp_path / "c" / "world").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_hub_world_names_missing_columns(tmp_path):
    path = hub_layout(tmp_path / "u", [{"text": "no prompt here"}])
    data = hub_world(tmp_path, f"data.spin_prompts.path={path}", "data.dpo_pairs=null")
    with pytest.raises(ValueError, match=r"lacks columns \['prompt', 'messages'\]"):
        build_world(data, tmp_path / "c")


def test_world_rows_name_a_missing_split(smoke_world):
    world, _ = smoke_world
    with pytest.raises(FileNotFoundError, match="no split 'nope'"):
        world.path("nope")

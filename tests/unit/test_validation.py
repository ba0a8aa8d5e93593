"""Bad input, as a new user types it: every bad value is one line naming the key, the value given and what is
allowed; the exit status is 2; nothing is written; and it happens at start-up, before any job runs.

The bad inputs go through the console script's own `main` in this process (the same code, without paying for a
new interpreter each time); `test_the_console_script_behaves_the_same` runs a few of them as real processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import spin_bench.cli.app as app
from spin_bench.config import check_inputs
from spin_bench.results import set_aside_older_layout, write_run_info
from spin_bench.stages import LAYOUT
from tests.conftest import make_config, spin_bench

PAPER = ["experiment=paper", "method=spin"]

# (arguments, what the one line must say). Every group appears: top level, paths, data, model, engine, method,
# generation, evaluation, tracking; and unknown options and keys, wrong types, out-of-range numbers,
# inconsistent combinations, missing files and a malformed dataset file.
BAD = [
    pytest.param(["method=spin", "seed=abc"], ["seed=abc", "valid integer"], id="wrong type"),
    pytest.param(["nokey=1"], ["nokey=1", "not a key of the config", "study, seed"], id="unknown top-level key"),
    pytest.param(["method=spin", "study=a/b"], ["study=a/b", "should match pattern"], id="study names a directory"),
    pytest.param(
        ["method=spin", "optimized_metric=foo"],
        ["optimized_metric=foo", "average", "arith_gen/"],
        id="unknown metric to optimise",
    ),
    pytest.param(
        ["method=spin", "axes=[method.betta]"], ["method.betta", "not a key of the config"], id="unknown axis"
    ),
    pytest.param(["seed=[1"], ["cannot parse the overrides"], id="override that does not parse"),
    pytest.param(
        ["method=spin", "data.splits.test=0"],
        ["data.splits.test=0", "greater than or equal to 1"],
        id="split size out of range",
    ),
    pytest.param(
        ["method=spin", "data.difficulty.min_steps=4"],
        ["data.difficulty", "min_steps 4 > max_steps 3"],
        id="inconsistent difficulty",
    ),
    pytest.param(
        ["method=spin", "data.source=web"], ["data.source=web", "'embedded', 'hub'"], id="unknown data source"
    ),
    pytest.param(
        ["method=spin", "model.dtype=float64"],
        ["model.dtype=float64", "'float32', 'bfloat16' or 'float16'"],
        id="unknown dtype",
    ),
    pytest.param(
        ["method=spin", "model.architecture.num_attention_heads=5"],
        ["model.architecture", "hidden_size 64 is not divisible by num_attention_heads 5"],
        id="architecture that cannot be built",
    ),
    pytest.param(
        [*PAPER, "model.name_or_path=/no/such/model"],
        ["model.name_or_path=/no/such/model", "not an HF model directory"],
        id="missing checkpoint",
    ),
    pytest.param(
        ["method=spin", "engine.precision=fp8"],
        ["engine.precision=fp8", "'fp32', 'bf16' or 'fp16'"],
        id="unknown precision",
    ),
    pytest.param(
        ["method=spin", "engine.gradient_accumulation_steps=3", "model.base_sft.batch_size=30"],
        ["method.recipe.batch_size=32", "not divisible by 1 processes x engine.gradient_accumulation_steps 3"],
        id="batch the accumulation does not divide",
    ),
    pytest.param(
        ["method=foo"],
        ["method=foo", "no such option", "dpo, epochs, sft, spin, spin_dpop, spin_nll, sppo"],
        id="unknown method",
    ),
    pytest.param(
        ["method=spin", "method.kind=nope"],
        ["method.kind=nope", "no module spin_bench.methods.nope"],
        id="unknown method module",
    ),
    pytest.param(
        ["method=spin", "method.reference=ema"],
        ["method.reference=ema", "'previous', 'base' or 'mixture'"],
        id="unknown reference",
    ),
    pytest.param(
        ["method=spin", "method.loss_type=kto"], ["method.loss_type=kto", "'sigmoid', 'hinge'"], id="unknown loss"
    ),
    pytest.param(
        ["method=spin_dpop", "method.loss_type=hinge"],
        ["method.dpop_lambda=50.0", "needs loss_type=sigmoid", "not 'hinge'"],
        id="DPO-Positive with another loss",
    ),
    pytest.param(
        ["method=spin_dpop", "method.nll_weight=0.5"],
        ["method.dpop_lambda=50.0", "does not combine with nll_weight"],
        id="DPO-Positive with the NLL term",
    ),
    pytest.param(
        ["method=spin", "method.reference=mixture", "method.alpha=1.5"],
        ["method.alpha=1.5", "less than or equal to 1"],
        id="alpha out of range",
    ),
    pytest.param(
        ["method=spin", "method.iterations=-1"],
        ["method.iterations=-1", "greater than or equal to 0"],
        id="negative iterations",
    ),
    pytest.param(
        ["method=spin", "method.history=0"], ["method.history=0", "greater than or equal to 1"], id="zero history"
    ),
    pytest.param(
        ["method=spin", "method.heldout=750"],
        ["method.heldout=750 leaves no training rows in spin_prompts (750 rows)"],
        id="held-out rows leave nothing to train on",
    ),
    pytest.param(
        ["method=sft", "method.prompts=351"],
        ["method.prompts=351", "spin_prompts has 350 training rows"],
        id="more prompts than the split has",
    ),
    pytest.param(
        ["method=spin", "+method.by_iteration.1.heldout=100"],
        ["method.by_iteration: 1: heldout cannot change between iterations"],
        id="by_iteration changing the run's shape",
    ),
    pytest.param(
        ["method=spin", "method.heldout=true"], ["method.heldout=true", "valid integer"], id="a flag for a number"
    ),
    pytest.param(
        ["method=spin", "optimized_metric=arith_gen"],
        ["optimized_metric=arith_gen", "<task>/<metric>,<filter>"],
        id="a metric to optimise without its name",
    ),
    pytest.param(
        ["method=spin", "evaluation.headline=[arith_gen/exact_match]"],
        ["evaluation.headline", "'arith_gen/exact_match' must be <task>/<metric>,<filter>"],
        id="a headline metric lm-eval does not report",
    ),
    pytest.param(
        ["method=spin", 'evaluation.headline=["arith_mc/acc,strict-match"]'],
        ["'arith_mc/acc,strict-match': arith_mc reports acc,none, acc_norm,none"],
        id="a headline metric under another filter",
    ),
    pytest.param(
        ["method=spin", "+method.by_iteration={-1: {beta: 1.0}}"],
        ["method.by_iteration", "keys [-1] are not iterations"],
        id="by_iteration key that is no iteration",
    ),
    pytest.param(
        ["method=spin", "+method.by_iteration={5: {loss_type: kto}}"],
        ["method.by_iteration.5.loss_type=kto", "'sigmoid', 'hinge'"],
        id="bad value at an iteration past the last",
    ),
    pytest.param(
        ["method=spin", "+method.by_iteration={2: {beta: -1.0}}"],
        ["method.by_iteration.2.beta=-1.0", "greater than 0"],
        id="bad value at one iteration",
    ),
    pytest.param(
        ["method=sft", "method.early_stop_below=0.5"],
        ["method.early_stop_below=0.5", "not a key of method", "method has"],
        id="a key only the preference arms have, on one arm",
    ),
    pytest.param(
        ["method=spin", "generation.backend=vlm"],
        ["generation.backend=vlm", "'hf' or 'vllm'"],
        id="typo in the generation backend",
    ),
    pytest.param(
        ["method=spin", "generation.temperature=-1"],
        ["generation.temperature=-1", "greater than or equal to 0"],
        id="negative temperature",
    ),
    pytest.param(
        ["method=spin", "generation.prompt_format=Q:"],
        ["generation.prompt_format=Q:", "must contain {prompt}"],
        id="prompt format without its slot",
    ),
    pytest.param(
        ["method=spin", "generation=vllm"],
        ["generation.backend=vllm", "not installed"],
        id="vLLM chosen but not installed",
    ),
    pytest.param(
        ["method=spin", "+evaluation.tasks.not_a_task=0"],
        ["evaluation.tasks", "['not_a_task'] are not tasks"],
        id="unknown embedded task",
    ),
    pytest.param(
        ["method=spin", "data=ultrachat", "model=zephyr_7b_sft"],
        ["evaluation=embedded", "data=ultrachat is a hub world"],
        id="eval suite of another world",
    ),
    pytest.param(
        ["experiment=paper", "method=dpo", "data.dpo_pairs=null"],
        ["method=dpo: reads the dpo_pairs split, which data=ultrachat leaves out (data.dpo_pairs=null)"],
        id="an arm reading a split the world leaves out",
    ),
    pytest.param(
        ["method=spin", "evaluation.batch_size=0"],
        ["evaluation.batch_size=0", "a number of examples >= 1"],
        id="zero eval batch",
    ),
    pytest.param(
        ["method=spin", "tracking.mode=sometimes"],
        ["tracking.mode=sometimes", "'offline', 'online' or 'disabled'"],
        id="unknown W&B mode",
    ),
]


def run_main(root: Path, args: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """`spin-bench <args>` through the console script's `main`: (exit status, stderr lines). Were the command
    to pass its checks, Hydra would not start: the test fails instead."""

    def started(*_, **__):
        raise AssertionError(f"spin-bench {' '.join(args)} passed its checks")

    monkeypatch.setattr(sys, "argv", ["spin-bench", *args])
    monkeypatch.setenv("SPIN_BENCH_ROOT", str(root))
    monkeypatch.setattr(app, "app", started)
    with pytest.raises(SystemExit) as exit_:
        app.main()
    return exit_.value.code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(("args", "says"), BAD)
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, capsys, args, says):
    status, lines = run_main(tmp_path, args, monkeypatch, capsys)
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("spin-bench: error: "), lines
    for part in says:
        assert part in lines[0], (part, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_a_key_only_some_arms_have_says_what_to_write_instead(tmp_path, monkeypatch, capsys):
    """`method.beta` on the default study of spin, sft, dpo and epochs: sft has no beta."""
    status, (line,) = run_main(tmp_path, ["method.beta=0.5"], monkeypatch, capsys)
    assert status == 2
    assert "method.beta=0.5: the sft arm of this study has no key 'beta' (dpo, epochs, spin do)" in line
    assert "`spin-bench method=dpo,epochs,spin method.beta=0.5` and `spin-bench method=sft`" in line
    assert list(tmp_path.iterdir()) == []


def test_a_key_no_arm_of_the_sweep_has_is_named_once(tmp_path, monkeypatch, capsys):
    status, lines = run_main(tmp_path, ["method=sft,dpo", "method.samples_logged=3"], monkeypatch, capsys)
    assert status == 2 and len(lines) == 1
    assert "method.samples_logged=3: 'samples_logged' is not a key of any arm of this study (dpo, sft)" in lines[0]


def test_every_job_of_a_sweep_is_checked_and_named(tmp_path, monkeypatch, capsys):
    """A bad value in one job of a grid: named with that job's overrides, before any job runs."""
    status, lines = run_main(tmp_path, ["method=spin", "seed=0", "method.beta=0.1,-0.5"], monkeypatch, capsys)
    assert status == 2
    assert lines == ["spin-bench: error: [method=spin seed=0 method.beta=-0.5] method.beta=-0.5: Input should be "
                     "greater than 0"]  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_several_bad_values_are_all_named(tmp_path, monkeypatch, capsys):
    status, lines = run_main(tmp_path, ["method=spin", "seed=x", "method.beta=0", "generation.top_p=2"], monkeypatch,
                             capsys)  # fmt: skip
    assert status == 2 and len(lines) == 3
    assert [line.split(": ")[2].split("=")[0] for line in lines] == ["seed", "method.beta", "generation.top_p"]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def chat(prompt: str, answer: str | None) -> str:
    turns = [{"role": "user", "content": prompt}] + ([{"role": "assistant", "content": answer}] if answer else [])
    return json.dumps({"prompt": prompt, "messages": turns})


@pytest.mark.parametrize(
    ("lines", "line_number", "says"),
    [([chat("q0", "a0"), '{"prompt": "q1", "messages": [', chat("q2", "a2")], 2, "not valid JSON"),
     ([chat("q0", "a0"), chat("q1", "a1"), chat("q2", None)], 3, "has no non-empty assistant message"),
     ([chat("q0", "a0"), '{"prompt": "q1"}'], 2, "lacks columns ['messages']")],
    ids=["malformed JSON", "no assistant turn", "missing column"],
)  # fmt: skip
def test_a_bad_row_of_a_local_dataset_is_named_by_file_and_line(tmp_path, monkeypatch, capsys, lines, line_number,
                                                                 says):  # fmt: skip
    data = write_jsonl(tmp_path / "prompts.jsonl", lines)
    root = tmp_path / "root"
    root.mkdir()
    status, (line,) = run_main(root, [*PAPER, f"data.spin_prompts.path={data}", "data.dpo_pairs=null"], monkeypatch,
                               capsys)  # fmt: skip
    assert status == 2
    assert f"data.spin_prompts.path={data}: {data} line {line_number}: {says}" in line
    assert list(root.iterdir()) == []


def test_a_missing_local_dataset_is_named(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nope" / "prompts.jsonl"
    status, (line,) = run_main(tmp_path, [*PAPER, f"data.spin_prompts.path={missing}"], monkeypatch, capsys)
    assert status == 2 and f"data.spin_prompts.path={missing}: {missing}: no such file or directory" in line
    assert list(tmp_path.iterdir()) == []


def test_a_run_directory_made_with_another_config_is_refused(tmp_path, monkeypatch, capsys):
    """The same run name with another config (here: an experiment overlay, which names no axis) would mix two
    configs' rows in one results file and resume the other's W&B run."""
    before = make_config(tmp_path, "method=spin")
    write_run_info(before.paths.run_dir, {"layout": LAYOUT, "config": before.resolved})
    written = (before.paths.run_dir / "run_info.json").read_text()
    status, (line,) = run_main(tmp_path, ["method=spin", "experiment=smoke", "study=embedded"], monkeypatch, capsys)
    assert status == 2
    assert f"paths.run_dir: {before.paths.run_dir} holds a run made with another config (differing keys: " in line
    assert (before.paths.run_dir / "run_info.json").read_text() == written  # left as it was
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["embedded", "run_info.json", "runs", "spin-seed0"]


def test_a_rerun_may_change_how_it_executes_but_not_what_it_computes(tmp_path):
    """Checkpoint cadence, waits and progress bars (EXECUTION_ONLY) may differ on a rerun that resumes a run (a
    preempted job rerun with more frequent checkpoints); they are no axis, so the run directory is the same."""
    before = make_config(tmp_path, "method=spin")
    write_run_info(before.paths.run_dir, {"layout": LAYOUT, "config": before.resolved})
    after = make_config(tmp_path, "method=spin", "engine.checkpoint_steps=2", "engine.timeout_s=60")
    assert after.paths.run_dir == before.paths.run_dir
    check_inputs(after)  # no ConfigError; a key that changes what is computed is refused (the test above)


def test_a_run_directory_of_an_older_layout_is_taken_over_and_its_files_set_aside(tmp_path):
    """Run directories written before the config sections were renamed hold no `layout`: a rerun is not refused,
    and the old files move to layout1/, so that no row of the old run mixes with the new one's."""
    config = make_config(tmp_path, "method=spin")
    write_run_info(config.paths.run_dir, {"config": {"train": {"name": "zero2"}}})
    (config.paths.run_dir / "results.jsonl").write_text('{"iteration": 5}\n')
    check_inputs(config)  # no ConfigError
    aside = set_aside_older_layout(config.paths.run_dir)
    assert aside == config.paths.run_dir / "layout1"
    assert sorted(p.name for p in config.paths.run_dir.iterdir()) == ["layout1"]
    assert (aside / "results.jsonl").read_text() == '{"iteration": 5}\n'
    assert set_aside_older_layout(config.paths.run_dir) is None  # nothing left to set aside


def test_a_paper_scale_run_directory_accepts_its_own_rerun(tmp_path):
    """The paper recipe schedules by iteration with integer keys, which run_info.json holds as strings: the same
    config must still be the same."""
    config = make_config(tmp_path, "experiment=paper", "method=spin")
    write_run_info(config.paths.run_dir, {"layout": LAYOUT, "config": config.resolved})
    check_inputs(make_config(tmp_path, "experiment=paper", "method=spin"))  # no ConfigError


def test_the_console_script_behaves_the_same(tmp_path):
    """The real process: exit status 2, one line per problem on stderr, nothing on disk, within seconds."""
    for args in (
        ["method=spin", "seed=abc"],
        ["method=foo"],
        ["method.beta=0.5"],
        ["method=spin", "generation.backend=vlm"],
    ):
        out = spin_bench(tmp_path, *args, timeout=60)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("spin-bench: error: ")
        assert out.stdout == "" and list(tmp_path.iterdir()) == []

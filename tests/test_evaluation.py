"""The embedded lm-eval tasks score a correct solution as correct; suites keep each task's shot count."""

from __future__ import annotations

import random
import re

import pytest
import yaml
from omegaconf import OmegaConf

from spin_bench.evaluation import cli_command, tasks_by_shots, tidy_results
from spin_bench.world.arithmetic import Difficulty, make_problem, wrong_solution
from tests.conftest import make_cfg


@pytest.fixture(scope="module")
def generate_task():
    from spin_bench.evaluation import TASK_TEMPLATES

    return yaml.safe_load((TASK_TEMPLATES / "arith_gen.yaml").read_text())


def test_stop_sequences_never_cut_a_correct_solution(generate_task):
    rng = random.Random(0)
    stops = generate_task["generation_kwargs"]["until"]
    for difficulty in (Difficulty(), Difficulty(min_steps=4, max_steps=5)):
        for _ in range(200):
            solution = make_problem(rng, difficulty).solution
            assert not [s for s in stops if s in solution and s != "</s>"], solution


def test_strict_regex_reads_the_answer_line(generate_task):
    (step, _take_first) = generate_task["filter_list"][0]["filter"]
    pattern = re.compile(step["regex_pattern"])
    rng = random.Random(1)
    for _ in range(200):
        problem = make_problem(rng, Difficulty())
        assert pattern.findall(problem.solution) == [str(problem.answer)]
        assert pattern.findall(wrong_solution(problem, rng)) != [str(problem.answer)]


def test_paper_suite_keeps_each_tasks_shots(tmp_path):
    cfg = make_cfg(tmp_path, "eval=open_llm_v1")
    assert tasks_by_shots(cfg.eval) == {25: ["arc_challenge"], 10: ["hellaswag"], 5: ["mmlu", "winogrande", "gsm8k"],
                                        0: ["truthfulqa_mc2"]}  # fmt: skip


def test_paper_suite_names_exist_in_lm_eval():
    from lm_eval.tasks import TaskManager

    known = set(TaskManager().all_tasks)
    assert {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"} <= known


def test_bad_shot_count_is_named():
    with pytest.raises(ValueError, match="eval.tasks.gsm8k must be a number of few-shot examples"):
        tasks_by_shots(OmegaConf.create({"tasks": {"gsm8k": -1}}))


def test_cli_command_mirrors_the_config(tmp_path):
    cfg = make_cfg(tmp_path)
    command = cli_command("/ckpt", cfg.eval, cfg.model, tmp_path)
    line = " ".join(command)
    assert "--model_args pretrained=/ckpt,dtype=float32" in line
    assert "--tasks arith_gen,arith_gen_hard,arith_mc --num_fewshot 0" in line
    assert "--apply_chat_template --fewshot_as_multiturn false" in line and "--seed 1234" in line
    with pytest.raises(ValueError, match="mixes shot counts"):
        cli_command("/ckpt", make_cfg(tmp_path, "eval=open_llm_v1").eval, cfg.model, None)


def test_tidy_results_keeps_filters_and_stderr():
    rows = tidy_results({
        "t": {"alias": "t", "exact_match,strict-match": 0.5, "exact_match_stderr,strict-match": 0.1,
              "acc,none": 1, "acc_stderr,none": "N/A"},
    })  # fmt: skip
    assert rows == [
        {"task": "t", "metric": "acc,none", "value": 1.0, "stderr": None},
        {"task": "t", "metric": "exact_match,strict-match", "value": 0.5, "stderr": 0.1},
    ]

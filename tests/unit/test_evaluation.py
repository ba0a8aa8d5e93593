"""The evaluation stage without a model: the embedded lm-eval tasks score a correct solution as correct, suites
keep each task's shot count, lm-eval's results become tidy rows, and the printed `lm_eval` command mirrors the
config. (That lm-eval knows the paper suite's tasks is checked in tests/integration: indexing them takes 6 s.)"""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
import yaml

from spin_bench.data.arithmetic import make_problem, wrong_solution
from spin_bench.data.config import Difficulty
from spin_bench.engine.config import Loading
from spin_bench.evaluation import harness
from spin_bench.evaluation.config import TASKS
from spin_bench.evaluation.harness import cli_command, tidy_results
from tests.conftest import make_config

EASY, HARD = Difficulty(1, 3, 15, 6, True), Difficulty(4, 5, 15, 6, True)


@pytest.fixture(scope="module")
def generate_task():
    return yaml.safe_load((TASKS / "arith_gen.yaml").read_text())


def test_stop_sequences_never_cut_a_correct_solution(generate_task):
    rng = random.Random(0)
    stops = generate_task["generation_kwargs"]["until"]
    for difficulty in (EASY, HARD):
        for _ in range(200):
            solution = make_problem(rng, difficulty).solution
            assert not [s for s in stops if s in solution and s != "</s>"], solution


def test_strict_regex_reads_the_answer_line(generate_task):
    (step, _take_first) = generate_task["filter_list"][0]["filter"]
    pattern = re.compile(step["regex_pattern"])
    rng = random.Random(1)
    for _ in range(200):
        problem = make_problem(rng, EASY)
        assert pattern.findall(problem.solution) == [str(problem.answer)]
        assert pattern.findall(wrong_solution(problem, rng)) != [str(problem.answer)]


def test_paper_suite_keeps_each_tasks_shots(tmp_path):
    evaluation = make_config(tmp_path, "experiment=paper", "method=spin").evaluation
    assert evaluation.by_shots() == {25: ["arc_challenge"], 10: ["hellaswag"], 5: ["mmlu", "winogrande", "gsm8k"],
                                     0: ["truthfulqa_mc2"]}  # fmt: skip


def test_cli_command_mirrors_the_config(tmp_path):
    evaluation = make_config(tmp_path).evaluation
    command = cli_command("/ckpt", evaluation, tmp_path, Loading(dtype="bfloat16"))
    assert command is not None
    line = " ".join(command)
    assert f"--model_args pretrained=/ckpt,dtype=bfloat16 --include_path {tmp_path}" in line
    assert "--tasks arith_gen,arith_gen_hard,arith_mc --num_fewshot 0 --batch_size 64" in line
    assert "--apply_chat_template --fewshot_as_multiturn false" in line and line.endswith("--seed 1234")
    paper = make_config(tmp_path, "experiment=paper", "method=spin").evaluation
    assert cli_command("/ckpt", paper, None, Loading()) is None  # mixed shot counts: no one command


def test_the_eval_cache_keys_on_what_lm_eval_computes_not_on_the_headline(tmp_path, monkeypatch):
    """Changing which metrics make the average re-uses the evaluation; changing the eval seed does not."""
    calls = []

    def fake_lm_eval(checkpoint, config, tasks, loading):
        calls.append(config.seed)
        return [{"task": "arith_gen", "metric": "exact_match,strict-match", "value": 0.5, "stderr": None}]

    monkeypatch.setattr(harness, "run_lm_eval", fake_lm_eval)
    evaluation = make_config(tmp_path).evaluation
    harness.evaluate("model", evaluation, None, Loading(), tmp_path)
    harness.evaluate(
        "model", dataclasses.replace(evaluation, headline=["arith_mc/acc,none"]), None, Loading(), tmp_path
    )
    assert calls == [1234]
    harness.evaluate("model", dataclasses.replace(evaluation, seed=1), None, Loading(), tmp_path)
    assert calls == [1234, 1]


def test_tidy_results_keeps_filters_and_stderr():
    rows = tidy_results({
        "t": {"alias": "t", "exact_match,strict-match": 0.5, "exact_match_stderr,strict-match": 0.1,
              "acc,none": 1, "acc_stderr,none": "N/A"},
    })  # fmt: skip
    assert rows == [
        {"task": "t", "metric": "acc,none", "value": 1.0, "stderr": None},
        {"task": "t", "metric": "exact_match,strict-match", "value": 0.5, "stderr": 0.1},
    ]

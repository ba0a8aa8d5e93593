"""The results contract: stores that upsert instead of duplicating, the one `average` over the suite's headline
metrics, a run's final score, and the results of the first layout (before this one) still loading; what ran a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spin_bench.analysis.load import load_results
from spin_bench.analysis.report import results_table
from spin_bench.analysis.stats import score_table
from spin_bench.results import RESULT_KEYS, average, final_score, hardware, results_store

LAYOUT1 = Path(__file__).resolve().parents[1] / "data" / "layout1"
HEADLINE = ["t/acc,none", "u/exact_match,strict-match"]


def row(iteration=0, value=0.5, task="t", metric="acc,none"):
    return {"study": "s", "method": "spin", "seed": 0, "iteration": iteration, "task": task, "metric": metric,
            "value": value, "stderr": 0.1, "checkpoint": "/x"}  # fmt: skip


def test_store_upserts_instead_of_duplicating(tmp_path):
    store = results_store(tmp_path)
    store.upsert([row(10, 0.4), row(0, 0.1), row(2, 0.2)])
    store.upsert([row(2, 0.3)])  # the same (study, method, seed, iteration, task, metric) logged again
    assert [(r["iteration"], r["value"]) for r in store.rows()] == [(0, 0.1), (2, 0.3), (10, 0.4)]
    assert set(store.rows()[0]) == set(RESULT_KEYS)


def test_store_rejects_rows_missing_contract_keys(tmp_path):
    store = results_store(tmp_path)
    bad = row()
    del bad["checkpoint"]
    with pytest.raises(ValueError, match=r"lacks keys \['checkpoint'\]"):
        store.upsert([bad])
    assert not store.path.exists()


def test_average_is_the_mean_of_the_headline_metrics_only():
    scores = {"t/acc,none": 0.25, "u/exact_match,strict-match": 0.75, "u/exact_match,flexible-extract": 1.0}
    assert average(scores, HEADLINE) == 0.5  # not 2 / 3: the flexible filter is not a headline number
    with pytest.raises(ValueError, match=r"headline metrics \['v/acc,none'\] are not among the scores"):
        average(scores, [*HEADLINE, "v/acc,none"])


def test_final_score_is_the_last_iterations_in_percent():
    strict, flexible = "exact_match,strict-match", "exact_match,flexible-extract"
    rows = [row(0, 0.1), row(0, 0.9, "u", strict), row(2, 0.5), row(2, 0.7, "u", strict), row(2, 0.0, "u", flexible)]
    assert final_score(rows, "average", HEADLINE) == pytest.approx(60.0)
    assert final_score(rows, "u/exact_match,strict-match", HEADLINE) == pytest.approx(70.0)
    assert final_score([], "average", HEADLINE) is None
    with pytest.raises(ValueError, match="optimized_metric='v/acc,none' is not among this run's metrics"):
        final_score(rows, "v/acc,none", HEADLINE)


def test_the_table_shows_the_headline_metrics_and_their_average(tmp_path):
    rows = [row(0, 0.2), row(0, 0.6, "u", "exact_match,strict-match"), row(0, 1.0, "u", "exact_match,flexible-extract")]
    table = results_table(rows, HEADLINE)
    assert "u exact_match" in table and "40.0" in table and "100.0" not in table  # the flexible filter: not shown


def test_results_of_the_first_layout_load_and_print_the_table_that_layout_printed():
    """Runs written before the config groups were renamed (train, eval, logger; no headline list): every metric
    counts, which for the embedded suite is its four headline metrics, so the table is the same."""
    frame = load_results(LAYOUT1 / "embedded")
    assert frame["headline"].all() and frame["run"].nunique() == 3
    printed = score_table(frame).round(2).to_string()
    assert [line.rstrip() for line in printed.splitlines()] == [
        line.rstrip() for line in (LAYOUT1 / "table.txt").read_text().splitlines()
    ]


def test_run_info_names_the_hardware_that_ran_the_run(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware() == f"cpu, {len(os.sched_getaffinity(0))} cores"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H200")
    assert hardware() == "2 x NVIDIA H200"

"""The analysis layer on a small sweep's run directories (tests/synthetic.py: written with the harness's own
writers): the tidy frame holds exactly the stored rows, its tables and statistics agree with numbers read back
from the files with json alone, only headline metrics make the table and its average, its figures render. Pure
statistics are also checked on small hand-built frames against independently computed values."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from scipy import stats

from spin_bench.analysis import (
    ablation_axes,
    ablation_table,
    against_base,
    best_by_method,
    confidence_intervals,
    format_intervals,
    load_diagnostics,
    load_results,
    method_table,
    paired_test,
    paper_table,
    plot_ablation,
    plot_diagnostics,
    plot_scores,
    save_png,
    score_table,
)
from spin_bench.analysis.load import tidy, with_axes
from spin_bench.analysis.plots import DIAGNOSTIC_PANELS
from spin_bench.analysis.report import render
from spin_bench.analysis.stats import variant_label
from spin_bench.results import metric_key
from tests.synthetic import EXTRA, HEADLINE, write_run, write_sweep

IDENTITY = ["study", "method", "seed", "iteration", "task", "metric"]


def raw(*directories: Path, name: str = "results.jsonl") -> list[dict]:
    """Every row of every `name` file of the run directories below `directories` (runs/<study>/<run>/), read here
    with json alone, and the run directory's name."""
    return [{**json.loads(line), "run": path.parent.name}
            for directory in directories for path in sorted(Path(directory).glob(f"**/{name}"))
            if "multirun" not in path.relative_to(directory).parts
            for line in path.read_text().splitlines() if line.strip()]  # fmt: skip


def studies(runs: Path) -> list[Path]:
    return [runs / "methods", runs / "beta"]


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("sweep"))


def per_seed_average(directory: Path, method: str, iteration: int | None = None) -> dict[int, float]:
    """{seed: mean of value * 100 over the headline metrics} at `iteration` (default: the run's last), from the
    files."""
    rows = [r for r in raw(directory) if r["method"] == method and metric_key(r["task"], r["metric"]) in HEADLINE]
    out = {}
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        at = max(r["iteration"] for r in mine) if iteration is None else iteration
        out[seed] = statistics.mean(100 * r["value"] for r in mine if r["iteration"] == at)
    return out


def records(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    return sorted(frame[keys].itertuples(index=False, name=None))


@pytest.fixture(scope="module")
def results(small_sweep):
    return load_results(studies(small_sweep))


def test_load_results_holds_exactly_the_stored_rows_with_run_column_and_axis(small_sweep, results):
    expected = raw(*studies(small_sweep))
    assert len(results) == len(expected)
    keys = [*IDENTITY, "value", "run"]
    assert records(results, keys) == sorted(tuple(r[k] for k in keys) for r in expected)
    assert set(results["study"]) == {"methods", "beta"}
    assert results.attrs["axes"] == ["beta"] and ablation_axes(results) == ["beta"]
    beta = results[results["study"] == "beta"]
    assert set(beta["beta"]) == {0.05, 0.5}
    assert set(beta["run"]) == {f"spin-beta={b}-seed{s}" for b in (0.05, 0.5) for s in (0, 1)}
    assert results.loc[results["study"] != "beta", "beta"].isna().all()
    assert (results["score"] == 100 * results["value"]).all()
    assert set(results["column"]) == {f"{r['task']} {r['metric'].split(',')[0]}" for r in expected}
    assert "arith_gen exact_match" in set(results["column"])


def test_load_results_takes_a_study_a_run_or_several_paths_each_file_once(small_sweep, results):
    study = load_results(small_sweep / "beta")
    assert set(study["study"]) == {"beta"} and study["run"].nunique() == 4
    run = load_results(small_sweep / "methods" / "sft-seed1")
    assert set(run["run"]) == {"sft-seed1"} and len(run) == len(raw(small_sweep / "methods" / "sft-seed1"))
    assert "beta" not in run and run.attrs["axes"] == []
    assert len(load_results([small_sweep, str(small_sweep / "beta")])) == len(raw(small_sweep))  # runs/: every study
    assert len(load_results([*studies(small_sweep), small_sweep / "beta" / "spin-beta=0.5-seed1"])) == len(results)


def test_load_refuses_a_missing_dir_and_a_dir_without_results(small_sweep, tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path / 'nope'}: no such directory"):
        load_results(tmp_path / "nope")
    # a study whose only results.jsonl sits in Hydra's multirun/ job dirs: skipped, so none
    job = tmp_path / "study" / "multirun" / "0-spin"
    job.mkdir(parents=True)
    (job / "results.jsonl").write_bytes((small_sweep / "methods" / "spin-seed0" / "results.jsonl").read_bytes())
    with pytest.raises(ValueError, match=f"{tmp_path / 'study'}: holds no results.jsonl"):
        load_results([small_sweep, tmp_path / "study"])
    with pytest.raises(ValueError, match="holds no diagnostics.jsonl"):
        load_diagnostics(tmp_path / "study")


def test_null_axis_values_stay_apart_from_runs_without_the_axis():
    frame = with_axes([{"method": "spin", "axes": {"method.history": None}}, {"method": "spin", "axes": {}},
                       {"method": "spin", "axes": {"method.history": 2, "data.prompts": [1, 2]}}])  # fmt: skip
    assert frame.attrs["axes"] == ["history", "prompts"]
    assert frame["history"].tolist()[0] == "null" and pd.isna(frame["history"].tolist()[1])
    assert frame["history"].tolist()[2] == 2 and frame["prompts"].tolist()[2] == "[1,2]"


def test_load_diagnostics_holds_the_stored_rows_with_axis(small_sweep):
    diagnostics = load_diagnostics(studies(small_sweep))
    expected = raw(*studies(small_sweep), name="diagnostics.jsonl")
    keys = ["study", "method", "seed", "iteration", "run"]
    assert records(diagnostics, keys) == sorted(tuple(r[k] for k in keys) for r in expected)
    spin = {(r["run"], r["iteration"]): r["heldout/rewards/accuracies"] for r in expected
            if r["method"] == "spin" and r["iteration"]}  # fmt: skip
    loaded = diagnostics[(diagnostics["method"] == "spin") & (diagnostics["iteration"] > 0)]
    assert loaded.set_index(["run", "iteration"])["heldout/rewards/accuracies"].to_dict() == spin
    assert set(diagnostics.loc[diagnostics["study"] == "beta", "beta"]) == {0.05, 0.5}


def test_score_table_is_the_mean_of_the_stored_headline_values(small_sweep):
    methods = load_results(small_sweep / "methods")
    assert set(methods.loc[~methods["headline"], "metric"]) == {EXTRA.split("/")[1]}  # loaded, flagged
    table = score_table(methods)
    assert table.index.names == ["method", "seed", "iteration"]
    assert list(table.columns) == ["arith_gen exact_match", "arith_gen_hard exact_match", "arith_mc acc",
                                   "arith_mc acc_norm", "average"]  # fmt: skip
    for method in ("spin", "sft", "dpo"):
        for seed, average in per_seed_average(small_sweep / "methods", method, iteration=2).items():
            assert table.loc[(method, seed, 2), "average"] == pytest.approx(average)
    beta = score_table(load_results(small_sweep / "beta"))
    assert beta.index.names == ["method", "beta", "seed", "iteration"]
    assert beta.loc[("spin", 0.5, 1, 0), "average"] == pytest.approx(
        per_seed_average(small_sweep / "beta" / "spin-beta=0.5-seed1", "spin", 0)[1]
    )


def test_confidence_intervals_are_student_t_across_seeds_of_the_study(small_sweep):
    intervals = confidence_intervals(load_results(small_sweep / "methods"))
    for method in ("spin", "sft", "dpo"):
        averages = list(per_seed_average(small_sweep / "methods", method).values())
        row = intervals.loc[(method, 2, "average")]
        half = 12.706204736174694 * statistics.stdev(averages) / math.sqrt(2)  # t_{0.975, 1}
        assert row["n"] == 2 and row["mean"] == pytest.approx(statistics.mean(averages))
        assert row["half_width"] == pytest.approx(half) and row["ci_high"] == pytest.approx(row["mean"] + half)


def hand_rows(scores: dict[tuple[str, int, int], float]) -> list[dict]:
    """One task metric per (method, seed, iteration): its `average` is that score."""
    return [{"study": "s", "method": m, "seed": s, "iteration": i, "task": "t", "metric": "acc,none", "value": v,
             "stderr": None, "checkpoint": "/c"} for (m, s, i), v in scores.items()]  # fmt: skip


def test_confidence_interval_of_known_values():
    frame = tidy(hand_rows({("spin", 0, 1): 0.10, ("spin", 1, 1): 0.20, ("spin", 2, 1): 0.30, ("sft", 0, 1): 0.4}))
    intervals = confidence_intervals(frame)
    spin = intervals.loc[("spin", 1, "average")]
    assert spin["mean"] == pytest.approx(20.0) and spin["n"] == 3
    assert spin["half_width"] == pytest.approx(4.302652729749462 * 10 / math.sqrt(3))  # t_{0.975, 2} * sd / sqrt(n)
    assert intervals.loc[("sft", 1, "t acc"), "n"] == 1 and np.isnan(intervals.loc[("sft", 1, "t acc"), "half_width"])
    # as text: `mean ± half_width`, and the bare mean where one seed gives no interval
    text = format_intervals(intervals)
    assert text.loc[("spin", 1), "average"] == f"20.0 ± {4.302652729749462 * 10 / math.sqrt(3):.1f}"
    assert (text.loc[("sft", 1), "average"], text.loc[("sft", 1), "n"]) == ("40.0", 1)


def test_score_lines_take_their_methods_hue_and_a_shade_of_it_per_variant():
    # 3 methods x 5 values of an axis: 15 variants, more than matplotlib's 10-colour cycle
    rows = [{**row, "axes": {"method.iterations": t}}
            for t in range(1, 6) for row in hand_rows({(m, 0, i): 0.5 for m in ("dpo", "sft", "spin")
                                                       for i in range(t + 1)})]  # fmt: skip
    fig = plot_scores(tidy(rows))
    colors = [tuple(line.get_color()) for line in fig.axes[0].lines]
    assert len(colors) == 15 and len(set(colors)) == 15
    for hue, lines in enumerate([colors[0:5], colors[5:10], colors[10:15]]):  # dpo, sft, spin in sorted order
        base = np.array(to_rgb(f"C{hue}"))
        assert lines[-1] == pytest.approx(tuple(base))  # the last value: the hue itself
        for color in lines:  # the others: the hue blended towards white, 1 - c = k * (1 - hue) with 0 < k <= 1
            tinted = base < 1  # a channel already at 1 (orange's red) stays 1
            k = (1 - np.array(color)[tinted]) / (1 - base[tinted])
            assert np.array(color)[~tinted] == pytest.approx(1.0)
            assert k == pytest.approx(np.full(len(k), k[0])) and 0 < k[0] <= 1


def test_paired_test_of_known_pairs_at_each_methods_last_iteration():
    spin, sft = [0.50, 0.61, 0.47, 0.58], [0.45, 0.52, 0.46, 0.50]
    scores = {("spin", s, 0): 0.9 for s in range(4)} | {("sft", s, 0): 0.1 for s in range(4)}  # not the last
    scores |= {("spin", s, 2): v for s, v in enumerate(spin)} | {("sft", s, 1): v for s, v in enumerate(sft)}
    (row,) = paired_test(tidy(hand_rows(scores)), baselines=("sft",)).to_dict("records")
    expected = stats.ttest_rel(np.array(spin) * 100, np.array(sft) * 100)
    assert (row["iteration"], row["baseline_iteration"], row["n"], row["note"]) == (2, 1, 4, "")
    assert row["mean_difference"] == pytest.approx(100 * np.mean(np.subtract(spin, sft)))
    assert row["t"] == pytest.approx(expected.statistic) and row["p"] == pytest.approx(expected.pvalue)
    low, high = expected.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


def test_every_variant_is_tested_against_its_own_base_model_at_its_last_iteration():
    last = {0: 0.52, 1: 0.44, 2: 0.61}  # spin beta=0.5 at iteration 2, per seed
    scores = {("spin", s, 0): 0.5 - 0.05 * s for s in range(3)} | {("spin", s, 1): 0.9 for s in range(3)}
    scores |= {("spin", s, 2): v for s, v in last.items()}
    rows = [{**row, "axes": {"method.beta": 0.5}} for row in hand_rows(scores)]
    rows += [{**row, "axes": {"method.beta": 0.1}} for row in hand_rows({("spin", s, t): 0.3 for s in (0, 1)
                                                                         for t in (0, 1)})]  # fmt: skip
    tests = against_base(tidy(rows)).set_index("treatment")
    expected = stats.ttest_rel([52, 44, 61], [50, 45, 40])
    row = tests.loc["spin beta=0.5"]
    assert (row["iteration"], row["baseline_iteration"], row["n"]) == (2, 0, 3)
    assert row["mean_difference"] == pytest.approx(22 / 3) and row["p"] == pytest.approx(expected.pvalue)
    assert tests.loc["spin beta=0.1", "mean_difference"] == 0 and tests.loc["spin beta=0.1", "iteration"] == 1


def test_paired_test_pairs_each_variant_with_the_baselines_of_its_own_setting():
    rows = [
        {**row, "axes": {"method.iterations": t}}
        for t in (1, 2)
        for row in hand_rows(
            {
                (m, s, i): 0.1 * (s + 1) + (0.05 if m == "spin" else 0)
                for m in ("spin", "sft")
                for s in (0, 1)
                for i in range(t + 1)
            }
        )
    ]
    rows += [{**row, "study": "s", "axes": {"method.beta": 0.5}}
             for row in hand_rows({("spin", s, 1): 0.3 for s in (0, 1)})]  # fmt: skip
    tests = paired_test(tidy(rows), baselines=("sft",))
    pairs = sorted(tests[["treatment", "baseline", "iteration", "baseline_iteration"]].itertuples(False, None))
    # iterations=1 against iterations=1 only, never 2; spin beta=0.5 (no iterations axis) against no sft variant
    # that sets iterations to a value it lacks
    assert pairs == [("spin iterations=1", "sft iterations=1", 1, 1), ("spin iterations=2", "sft iterations=2", 2, 2)]
    assert tests["mean_difference"].tolist() == pytest.approx([5.0, 5.0])


def test_integer_axis_values_stay_integers_beside_runs_without_the_axis():
    frame = tidy([{**row, "axes": {"method.iterations": 3}} for row in hand_rows({("spin", 0, 1): 0.5})]
                 + [{**row, "axes": {}} for row in hand_rows({("sft", 0, 1): 0.4})])  # fmt: skip
    assert frame["iterations"].tolist()[0] == 3 and isinstance(frame["iterations"].tolist()[0], int)
    assert pd.isna(frame["iterations"].tolist()[1])
    labels = [variant_label(["method", "iterations"], key[:2]) for key in score_table(frame).index]
    assert labels == ["sft", "spin iterations=3"]  # as the run directory says it, not iterations=3.0


def test_paired_test_with_one_seed_says_so_instead_of_raising():
    frame = tidy(hand_rows({("spin", 0, 1): 0.5, ("sft", 0, 1): 0.4, ("dpo", 1, 1): 0.3}))
    tests = paired_test(frame).set_index("baseline")
    assert tests.loc["sft", "n"] == 1 and tests.loc["dpo", "n"] == 0
    assert tests[["t", "p", "ci_low"]].isna().all().all()
    assert tests["note"].str.contains("fewer than 2 paired seeds").all()


def test_paired_test_matches_scipy_on_the_stored_per_seed_averages(small_sweep):
    tests = paired_test(load_results(small_sweep / "methods")).set_index("baseline")
    spin = per_seed_average(small_sweep / "methods", "spin")
    for baseline in ("sft", "dpo"):
        other = per_seed_average(small_sweep / "methods", baseline)
        expected = stats.ttest_rel(list(spin.values()), [other[s] for s in spin])
        row = tests.loc[baseline]
        assert row["treatment"] == "spin" and row["n"] == 2
        assert row["mean_difference"] == pytest.approx(statistics.mean(spin[s] - other[s] for s in spin))
        np.testing.assert_allclose([row["t"], row["p"]], [expected.statistic, expected.pvalue], equal_nan=True)
        assert (row["note"] != "") == bool(np.isnan(expected.statistic))


def test_paper_table_averages_its_six_tasks_and_method_table_averages_seeds(small_sweep):
    paper = paper_table()
    tasks = ["arc_challenge", "truthfulqa_mc2", "winogrande", "gsm8k", "hellaswag", "mmlu"]
    assert list(paper.columns) == ["model", *tasks, "average"]
    assert sorted(paper.index) == [("dpo", 1), ("sft", 0), ("spin", 1), ("spin", 2), ("spin", 3), ("spin", 4)]
    assert (paper[tasks].mean(axis=1) - paper["average"]).abs().max() < 0.01
    assert paper.loc[("spin", 4), "average"] == 63.16
    ours = method_table(load_results(small_sweep / "methods"))
    assert ours.index.names == ["method", "iteration"] and list(ours.columns)[-1] == "average"
    averages = per_seed_average(small_sweep / "methods", "dpo")
    assert ours.loc[("dpo", 2), "average"] == pytest.approx(statistics.mean(averages.values()))


def test_figures_have_a_panel_per_column_and_save_as_png(small_sweep, tmp_path):
    methods = load_results(small_sweep / "methods")
    scores = plot_scores(methods)
    assert [ax.get_title() for ax in scores.axes] == list(score_table(methods).columns)
    assert all(len(ax.lines) == 3 for ax in scores.axes)  # spin, sft, dpo
    ablation = plot_ablation(load_results(studies(small_sweep)), "beta")
    assert ablation.axes[0].get_title() == "average"
    assert [t.get_text() for t in ablation.axes[0].get_xticklabels()] == ["0.05", "0.5"]
    diagnostics = plot_diagnostics(load_diagnostics(studies(small_sweep)))
    assert (
        len(diagnostics.axes) == len(DIAGNOSTIC_PANELS) == 8 and diagnostics.axes[0].lines
    )  # held-out reward accuracy of spin, dpo
    path = save_png(scores, tmp_path / "figures" / "scores.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in path.parent.iterdir()] == ["scores.png"]  # no temporary file left beside it


def test_the_tuning_rule_takes_each_methods_best_mean_and_the_smaller_value_on_a_tie(small_sweep):
    beta = load_results(small_sweep / "beta")
    table = ablation_table(beta, "beta").xs("average", level="column")
    (row,) = best_by_method(beta, "beta").itertuples()
    assert row.mean == table["mean"].max() and table.loc[("spin", row.beta), "mean"] == row.mean and row.n == 2
    tied = beta.copy()
    tied["score"] = 50.0  # every run scores the same: the smaller beta wins
    assert best_by_method(tied, "beta")["beta"].tolist() == [0.05]


def test_an_axis_of_numbers_and_null_is_reported_and_tuned_like_any_other(tmp_path):
    """`method.history` 1, 2, null (all iterations): the report renders, and a tie goes to the smallest number."""
    study = tmp_path / "runs" / "history"
    for seed in (0, 1):
        for history in (None, 2, 1):
            write_run(study, "spin", seed, {"method.history": history})
    history = load_results(study)
    assert set(ablation_table(history, "history").index.get_level_values("history")) == {1, 2, "null"}
    history["score"] = 50.0
    assert best_by_method(history, "history")["history"].tolist() == [1]
    _, files = render([study])
    assert "## Ablation: history" in files["report.md"].decode() and "ablation_history.png" in files

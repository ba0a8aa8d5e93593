"""`spin-bench-report` and the study report on a small sweep's run directories (tests/synthetic.py): the report
holds the table's numbers, the statistics sections and figures of what the runs have; bad input exits 2 with one
line and writes nothing."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spin_bench.analysis import (
    confidence_intervals,
    format_intervals,
    load_diagnostics,
    load_results,
    objective_table,
    score_table,
)
from spin_bench.analysis.plots import DIAGNOSTIC_PANELS, PANEL
from spin_bench.cli.callbacks import StudyReport
from spin_bench.cli.report import main
from tests.synthetic import write_run, write_sweep

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("sweep"))


def table_of(study: Path) -> str:
    return score_table(load_results(study)).round(2).to_string()


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def test_report_of_a_study_has_its_table_statistics_and_figures(small_sweep, tmp_path, capsys):
    assert main([str(small_sweep / "methods"), "--out", str(tmp_path), "--html"]) == 0
    report = (tmp_path / "report.md").read_text()
    table = table_of(small_sweep / "methods")
    assert report.startswith("# methods: scores in %\n") and f"```\n{table}\n```" in report
    printed = capsys.readouterr().out  # two seeds: the mean and CI table, the questions, what each arm learned
    intervals = format_intervals(confidence_intervals(load_results(small_sweep / "methods")))
    assert f"mean ± 95% CI across seeds (n seeds), scores in %\n{intervals.round(2).to_string()}" in printed
    assert "Q1 (does SPIN improve on the base model?) SPIN - the base model" in printed
    assert (
        "Q2 (does iterating beat training iteration 0 for the same total steps (the epochs arm)?): not answered"
        in printed
    )
    assert "what each arm learned" in printed
    assert "base models (did each finish its SFT?): 2 of 2 met the plateau criterion" in printed  # seeds 0 and 1
    assert "seed 1 1.900 -> 0.985 in 4 epochs" in printed and "## The base models" in report
    assert "spin (did it learn its objective?): held-out reward accuracy (chance: 0.5), mean over 2 seeds" in printed
    assert "Did each arm learn its own objective?" in report
    seeds = report.split("Each seed's trained model: its held-out objective")[1].split("```")[1]
    assert seeds.split("\n")[1].split() == ["seed", "seed", "0", "seed", "1"]  # a column per seed
    assert " learned" in seeds or "not detected" in seeds
    assert "seeds' models learned" in printed
    # the objectives (nats, shares) to 3 decimals in the report as printed, where 1 would read 0.0 +- 0.0
    objectives = format_intervals(objective_table(load_diagnostics(small_sweep / "methods")), 3)
    assert objectives.to_string() in report and objectives.to_string() in printed
    assert "0.985        0.015" in report.split("## The base models")[1]  # 3 decimals: 2 would read 0.98, 0.01
    assert "## Mean and 95% CI across seeds" in report and "## SPIN vs baselines" in report
    assert "## The paper's three questions" in report and "## Diagnostics: what each arm learned" in report
    assert "Ablation" not in report and not list(tmp_path.glob("ablation_*"))  # no axis in this study
    columns = len(score_table(load_results(small_sweep / "methods")).columns)
    assert png_size((tmp_path / "scores.png").read_bytes()) == (round((PANEL * columns + 1.5) * 120), 420)
    assert png_size((tmp_path / "diagnostics.png").read_bytes())[0] == round(
        (PANEL * len(DIAGNOSTIC_PANELS) + 1.5) * 120
    )
    html = (tmp_path / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 2 and "SPIN vs baselines" in html


def test_a_study_read_twice_shares_its_per_seed_cells(small_sweep, tmp_path):
    """The same study from two paths (a rerun beside the original): one row per variant and iteration still, its
    two runs of a seed in one cell."""
    copy = tmp_path / "rerun" / "methods"
    shutil.copytree(small_sweep / "methods", copy, ignore=shutil.ignore_patterns("wandb"))
    assert main([str(small_sweep / "methods"), str(copy), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    seeds = report.split("Each seed's trained model: its held-out objective")[1].split("```")[1]
    row = next(line for line in seeds.split("\n") if line.startswith("dpo"))
    assert row.count(" | ") == 2  # seeds 0 and 1, each read twice


def test_report_of_an_ablation_has_a_section_and_figure_per_axis(small_sweep, tmp_path):
    assert main([str(small_sweep / "beta"), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Ablation: beta" in report and "![ablation_beta.png](ablation_beta.png)" in report
    assert "SPIN vs baselines" not in report  # no baseline in this study
    assert png_size((tmp_path / "ablation_beta.png").read_bytes())[1] == 420


def test_spin_is_tested_against_every_other_arm_of_its_study(tmp_path):
    """A regularisation study has no SFT or DPO: SPIN's paired tests are against its variants."""
    for seed in (0, 1):
        for method in ("spin", "spin_nll", "sppo"):
            write_run(tmp_path / "runs" / "regularisation", method, seed, {})
    assert main([str(tmp_path / "runs" / "regularisation"), "--out", str(tmp_path / "out")]) == 0
    tests = (tmp_path / "out" / "report.md").read_text().split("## SPIN vs baselines")[1].split("##")[0]
    assert "spin_nll" in tests and "sppo" in tests


def test_study_report_callback_writes_into_the_study_and_prints_the_table(small_sweep, tmp_path, capsys):
    study = tmp_path / "methods"
    shutil.copytree(small_sweep / "methods", study, ignore=shutil.ignore_patterns("wandb"))
    StudyReport.report(
        OmegaConf.create(
            {"study": "methods", "paths": {"study_dir": str(study), "cache_dir": str(tmp_path / ".cache")}}
        )
    )
    printed = capsys.readouterr().out
    assert "=== study methods" in printed and "mean ± 95% CI across seeds" in printed and "Q3 (" in printed
    assert (study / "report.md").read_text().startswith("# methods: scores in %")
    assert (study / "scores.png").read_bytes().startswith(PNG)


def test_a_failing_study_report_says_so_and_how_to_retry(small_sweep, tmp_path, monkeypatch, caplog):
    import spin_bench.analysis.report as report

    def broken(study_dir):
        raise TypeError("a bug")

    monkeypatch.setattr(report, "write_report", broken)
    config = OmegaConf.create({"study": "methods", "paths": {"study_dir": str(small_sweep / "methods"),
                                                             "cache_dir": str(tmp_path / ".cache")}})  # fmt: skip
    with pytest.raises(TypeError, match="a bug"):
        StudyReport.report(config)
    assert f"spin-bench-report {small_sweep / 'methods'}" in caplog.text and "report failed" in caplog.text


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for bad, message in [(tmp_path / "nope", "no such directory"), (tmp_path / "empty", "holds no results.jsonl")]:
        assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(bad) in err and message in err
    with pytest.raises(SystemExit) as exit_:  # several directories, no --out: argparse's usage error
        main([str(tmp_path / "empty"), str(tmp_path / "nope")])
    assert exit_.value.code == 2 and "--out is required" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    command = subprocess.run([sys.executable, "-m", "spin_bench.cli.report", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert command.returncode == 2 and command.stderr.startswith("spin-bench-report: error:")

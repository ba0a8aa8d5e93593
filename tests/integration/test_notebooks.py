"""The analysis notebooks (notebooks/*.py, jupytext percent format) execute headless against a small sweep's run
directories (tests/synthetic.py), in a kernel of this interpreter, and write their figures where
SPIN_BENCH_FIGURES says. No model: this tier for the kernels' start-up time."""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

from tests.synthetic import write_sweep

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("sweep"))


def execute(name: str, runs: list[Path], figures: Path, monkeypatch) -> list[dict]:
    """Run one notebook (the kernel inherits SPIN_BENCH_RUNS / SPIN_BENCH_FIGURES) and return its outputs."""
    monkeypatch.setenv("SPIN_BENCH_RUNS", os.pathsep.join(map(str, runs)))
    monkeypatch.setenv("SPIN_BENCH_FIGURES", str(figures))
    notebook = jupytext.read(NOTEBOOKS / name)
    # kernel `python3`: jupyter_client runs it with this interpreter (the venv's), found or not as a kernelspec
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def test_the_notebooks_are_jupytext_percent_files():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.py"))
    assert names == ["01_method_comparison.py", "02_iterations_and_significance.py", "03_ablations.py",
                     "04_selfplay_diagnostics.py"]  # fmt: skip
    for name in names:
        text = (NOTEBOOKS / name).read_text()
        assert text.startswith("# ---\n# jupyter:\n#   jupytext:\n") and "format_name: percent" in text
        assert jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent") == text


@pytest.mark.parametrize(
    ("name", "figures"),
    [("01_method_comparison.py", []), ("02_iterations_and_significance.py", ["scores.png"]),
     ("03_ablations.py", ["ablation_beta.png"]), ("04_selfplay_diagnostics.py", ["diagnostics.png"])],
)  # fmt: skip
def test_notebook_runs_on_the_sweep_and_writes_its_figures(name, figures, small_sweep, tmp_path, monkeypatch):
    outputs = execute(name, [small_sweep / "methods", small_sweep / "beta"], tmp_path / "figures", monkeypatch)
    written = sorted(p.name for p in (tmp_path / "figures").glob("*")) if figures else []
    assert written == figures
    for figure in figures:
        assert (tmp_path / "figures" / figure).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    shown = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(shown) == len(figures)  # each figure is shown in the notebook too
    if name.startswith("01"):
        html = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
        assert "SPIN iter3" in html and "arith_gen exact_match" in html  # the paper's table beside ours


def test_ablation_notebook_without_axes_writes_no_figure(small_sweep, tmp_path, monkeypatch):
    outputs = execute("03_ablations.py", [small_sweep / "methods"], tmp_path / "figures", monkeypatch)
    assert "ablation axes in these runs: none" in "".join(o.get("text", "") for o in outputs)
    assert not (tmp_path / "figures").exists()

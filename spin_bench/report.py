"""The study report: tables and figures of one or many studies' runs, as Markdown (and HTML) beside PNGs.

`spin-bench` runs the arms of a study as one Hydra multirun; when the last arm ends, `StudyReport` (a Hydra
callback, conf/hydra/default.yaml) writes the study's report into `runs/<study>/` and prints its score table.
`spin-bench-report RUNS_OR_STUDY_DIR [...] [--out DIR] [--html]` writes the same for any runs, studies or run
directories, without Jupyter. Files: `report.md` (the score table: variant x seed x iteration rows, one column
per task metric in %, and their average; the mean and 95% CI across seeds; SPIN's paired tests against SFT and
DPO; one section per ablation axis; the self-play diagnostics), `scores.png`, `ablation_<axis>.png`,
`diagnostics.png`, and with `--html` `report.html` embedding them. The numbers come from spin_bench.analysis.
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from spin_bench.cache import atomic_write_bytes, read_jsonl

INTRO = ("Scores in %. Iteration 0 is the base model, k the model after k iterations; `average` is the unweighted "
         "mean of the task columns. CIs: Student t across seeds (n = seeds).")  # fmt: skip


def study_rows(study_dir: Path) -> list[dict]:
    """The result rows of every run (arm, seed) under a study directory."""
    return [row for path in sorted(Path(study_dir).glob("*/results.jsonl")) for row in read_jsonl(path)]


def score_frame(rows: list[dict]):
    """(method, seed, iteration) x (task metric) in %, with the average over the task metrics as last column."""
    from spin_bench.analysis.load import tidy
    from spin_bench.analysis.stats import score_table

    return score_table(tidy(rows))


def results_table(rows: list[dict]) -> str:
    return _text(score_frame(rows)) if rows else "(no results)"


def render(paths: list[Path], html_page: bool = False) -> tuple[str, dict[str, bytes]]:
    """The report of the runs below `paths`, in memory: (the score table's text, {file name: contents}).
    Raises ValueError naming the path when one does not exist or holds no results."""
    from spin_bench import analysis

    results = analysis.load_results(paths)
    try:
        diagnostics = analysis.load_diagnostics(paths)
    except ValueError:  # runs of 0 iterations log none
        diagnostics = None
    table = _text(analysis.score_table(results))
    title = ", ".join(sorted(results["study"].unique()))
    figures = {"scores.png": analysis.plot_scores(results)}
    sections = [("#", f"{title}: scores in %", [("text", INTRO), ("table", table), ("image", "scores.png")])]
    intervals = analysis.confidence_intervals(results)
    if intervals["n"].max() >= 2:
        sections.append(
            ("##", "Mean and 95% CI across seeds", [("table", _text(analysis.format_intervals(intervals)))])
        )
        tests = analysis.paired_test(results)
        if len(tests):
            text = ("Paired t-test over seeds of the `average` at each variant's last iteration (pairs share a seed, "
                    "hence a base model); `mean_difference` = treatment - baseline, in points.")  # fmt: skip
            sections.append(("##", "SPIN vs baselines", [("text", text), ("table", _text(tests))]))
    for axis in analysis.ablation_axes(results):
        name = f"ablation_{axis}.png"
        figures[name] = analysis.plot_ablation(results, axis)
        summary = _text(analysis.format_intervals(analysis.ablation_table(results, axis)))
        text = "Each run's final-iteration score: mean ± 95% CI half-width across seeds, n seeds."
        sections.append(("##", f"Ablation: {axis}", [("text", text), ("table", summary), ("image", name)]))
    if diagnostics is not None:
        figures["diagnostics.png"] = analysis.plot_diagnostics(diagnostics)
        sections.append(("##", "Self-play diagnostics", [("image", "diagnostics.png")]))
    files = {name: analysis.png_bytes(fig) for name, fig in figures.items()}
    files["report.md"] = _markdown(sections).encode()
    if html_page:
        files["report.html"] = _html(title, sections, files).encode()
    return table, files


def write_files(out: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        atomic_write_bytes(Path(out) / name, data)


def write_report(study_dir: Path) -> str:
    """Write the study's report into `study_dir` and return its score table (no results: a note, no files)."""
    study_dir = Path(study_dir)
    if not study_rows(study_dir):
        return results_table([])
    table, files = render([study_dir])
    write_files(study_dir, files)
    return table


class StudyReport(Callback):
    """Hydra callback: the study report once every arm of the multirun (or the single run) has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._report(config)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        self._report(config)

    @staticmethod
    def _report(config: DictConfig) -> None:
        study_dir = Path(config.paths.study_dir)
        table = write_report(study_dir)
        print(f"\n=== study {config.study}: scores in % (iteration 0 = the base model) ===\n{table}")
        print(f"\ntable: {study_dir / 'report.md'}\nplot: {study_dir / 'scores.png'}")


def main(argv: list[str] | None = None) -> int:
    """`spin-bench-report`: exit 0 with the report written, 2 on bad input (one line on stderr, nothing written)."""
    parser = argparse.ArgumentParser(prog="spin-bench-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="runs/, study or run directories")
    parser.add_argument("--out", type=Path, help="output directory (default: the one directory given)")
    parser.add_argument("--html", action="store_true", help="also write report.html with the figures embedded")
    args = parser.parse_args(argv)
    if args.out is None and len(args.paths) > 1:
        parser.error("--out is required with several directories")
    from spin_bench.environment import cache_env

    for key, value in cache_env(Path(os.environ.get("SPIN_BENCH_ROOT", ".")) / ".cache").items():
        os.environ.setdefault(key, value)  # matplotlib's cache in the project, as the CLI keeps it
    try:
        table, files = render(args.paths, args.html)
    except ValueError as err:
        print(f"spin-bench-report: error: {err}", file=sys.stderr)
        return 2
    out = args.out or args.paths[0]
    write_files(out, files)
    print(f"{table}\n\nwrote {', '.join(str(out / name) for name in sorted(files))}")
    return 0


def _text(frame) -> str:
    """A table as the report and the console print it: values rounded to 2 decimals."""
    return frame.round(2).to_string()


def _markdown(sections: list) -> str:
    parts = []
    for level, heading, items in sections:
        parts.append(f"{level} {heading}")
        for kind, body in items:
            parts.append({"table": f"```\n{body}\n```", "text": body, "image": f"![{body}]({body})"}[kind])
    return "\n\n".join(parts) + "\n"


def _html(title: str, sections: list, files: dict[str, bytes]) -> str:
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    for level, heading, items in sections:
        parts.append(f"<h{len(level)}>{html.escape(heading)}</h{len(level)}>")
        for kind, body in items:
            if kind == "image":
                data = base64.b64encode(files[body]).decode()
                parts.append(f"<img alt='{html.escape(body)}' src='data:image/png;base64,{data}'>")
            else:
                parts.append(f"<pre>{html.escape(body)}</pre>" if kind == "table" else f"<p>{html.escape(body)}</p>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""The report of one or many studies' runs: tables and figures, as Markdown (and HTML) beside PNGs.

Written into `runs/<study>/` when a study's runs end (the Hydra callback of spin_bench/cli/callbacks.py) and by
`spin-bench-report` for any runs, studies or run directories (spin_bench/cli/report.py). Files: `report.md`
(the score table: variant x seed x iteration rows, one column per headline metric in %, and their average; the
mean and 95% CI across seeds; the paper's three questions; SPIN's paired tests against every other arm, and every
variant's against its base model; one section per ablation axis; whether each arm learned its objective, and
the self-play diagnostics), `scores.png`, `ablation_<axis>.png`, `diagnostics.png`, and on request `report.html`
embedding them. The numbers come from the rest of spin_bench.analysis.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from spin_bench.analysis.load import load_diagnostics, load_results, tidy
from spin_bench.analysis.plots import plot_ablation, plot_diagnostics, plot_scores, png_bytes
from spin_bench.analysis.questions import (
    answer_table,
    base_sentence,
    learning_sentences,
    learning_table,
    seed_learning_table,
    sentences,
)
from spin_bench.analysis.stats import (
    ablation_axes,
    ablation_table,
    against_base,
    base_table,
    best_by_method,
    confidence_intervals,
    format_intervals,
    objective_table,
    paired_test,
    score_table,
)
from spin_bench.paths import format_value
from spin_bench.results import metric_key
from spin_bench.stages import atomic_write_bytes

INTRO = ("Scores in %. Iteration 0 is the base model, k the model after k iterations; `average` is the unweighted "
         "mean of the suite's headline metrics, the columns. CIs: Student t across seeds (n = seeds).")  # fmt: skip


QUESTIONS = (
    "Paired t-tests over seeds of the `average` score (a seed fixes the base model both sides start from); "
    "`mean_difference` = SPIN - baseline in points, with its 95% CI. A CI that spans zero means no difference was "
    "detected, not that there is none: its ends bound what this study could have missed."
)
BASES = (
    "Each base model the runs start from (one per seed, shared by that seed's arms): its SFT from scratch on the "
    "world's SFT data, scored after every epoch on held-out solutions (the `valid` split), stops when that loss "
    "plateaus (`model.plateau`, HF's EarlyStoppingCallback rule). `heldout_loss_first` and `heldout_loss_last`: "
    "that loss (nats per token) after the first and the last epoch; `recent_gain`: what the last `patience` "
    "epochs gained on the best before them; `plateaued`: whether it met the criterion (false: the epoch cap "
    "stopped it first). The fall from first to last is the SFT objective learned, on the same code path that "
    "the SFT arm continues."
)
LEARNING = (
    "Did each arm learn its own objective? At each iteration, mean and 95% CI across seeds of its held-out "
    "objective: the preference arms' held-out reward accuracy (over the held-out pairs whose answers differ; "
    "chance: 0.5), the others' held-out real answers' log-probability minus the base model's (nats per answer; "
    "learning nothing: 0). `learned`: the CI lies above that value; `went the wrong way`: below it; `not "
    "detected`: it spans it. Then the same verdict for each seed's trained model, from its own 95% CI over its "
    "held-out items (the accuracy: exact binomial over its pairs; the log p change: Student t over the answers, "
    "each scored by the model and its base model): `seeds_learned` of `seeds_tested` (the per-seed table below). "
    "The across-seed CI asks whether the arm learns whichever base model it starts from; the per-seed one, "
    "whether that seed's model does better than learning nothing on items it never saw."
)
SEEDS = (
    "Each seed's trained model: its held-out objective, [its 95% CI over its own held-out items], verdict. Each "
    "verdict is one test at 95%: a model that learned nothing reads `learned` with probability 2.5%, so among many "
    "models a few such verdicts are expected by chance."
)
OBJECTIVES = (
    "Each arm's held-out objectives and diagnostics: mean ± 95% CI across seeds, per iteration (0: the base "
    "model). `heldout_real logp_vs_base`: log-probability of held-out real answers (the world's `valid` split, "
    "trained on by no stage) minus the base model's, in nats per answer: SFT's objective, and the likelihood "
    "displacement of the preference arms. `heldout_real answer_entropy`: entropy (nats) of the next token at the "
    "final-answer digits. `heldout rewards/accuracies`: share of held-out pairs whose real (chosen) answer gets "
    "the larger implicit reward, the preference arms' objective (over the pairs whose answers differ: chance 0.5; "
    "`heldout/pairs/degenerate` in diagnostics.jsonl counts the others). `heldout pairs/ches_normalised`: how "
    "alike the pair's two answers look to the model (CHES, Razin et al. 2024). `generated_correct`: share of the "
    "model's own answers to the SPIN prompts that are correct. Training metrics (`train/...` in "
    "diagnostics.jsonl) are averaged over each whole stage."
)


def results_table(rows: Sequence[Mapping[str, Any]], headline: Sequence[str]) -> str:
    """One run's rows as the study table prints them (its headline metrics and their average, in %)."""
    if not rows:
        return "(no results)"
    return _text(score_table(tidy([{**r, "headline": metric_key(r["task"], r["metric"]) in headline} for r in rows])))


def render(paths: Sequence[Path], html_page: bool = False) -> tuple[str, dict[str, bytes]]:
    """The report of the runs below `paths`, in memory: (its summary, {file name: contents}). The summary is what
    a study prints at its end: the score table (with several seeds, their mean and 95% CI instead), the paper's
    three questions answered, and the table of what each arm learned. Raises ValueError naming the path when
    one does not exist or holds no results."""
    results = load_results(paths)
    try:
        diagnostics = load_diagnostics(paths)
    except ValueError:  # runs of 0 iterations log none
        diagnostics = None
    table = _text(score_table(results))
    title = ", ".join(sorted(results["study"].unique()))
    figures = {"scores.png": plot_scores(results)}
    sections = [("#", f"{title}: scores in %", [("text", INTRO), ("table", table), ("image", "scores.png")])]
    intervals = confidence_intervals(results)
    several = intervals["n"].max() >= 2
    printed = [f"mean ± 95% CI across seeds (n seeds), scores in %\n{_text(format_intervals(intervals))}" if several
               else table]  # fmt: skip
    answers = answer_table(results)
    if len(answers):
        said = sentences(answers)
        sections.append(("##", "The paper's three questions",
                         [("text", QUESTIONS), ("text", "\n\n".join(said)), ("table", _text(answers))]))  # fmt: skip
        printed.append("\n".join(said))
    if several:
        sections.append(("##", "Mean and 95% CI across seeds", [("table", _text(format_intervals(intervals)))]))
        others = sorted(set(results["method"]) - {"spin"})  # every other arm: baselines, or regularised variants
        tests = paired_test(results, baselines=others)
        if len(tests):
            text = ("Paired t-test over seeds of the `average` at each variant's last iteration (pairs share a seed, "
                    "hence a base model), SPIN against every other arm of the study; `mean_difference` = treatment "
                    "- baseline, in points.")  # fmt: skip
            sections.append(("##", "SPIN vs baselines", [("text", text), ("table", _text(tests))]))
        text = ("Paired t-test over seeds of each variant's `average` at its last iteration against its base model "
                "(iteration 0, the same seed's); `mean_difference` in points.")  # fmt: skip
        base_tests = _text(against_base(results))
        sections.append(("##", "Every variant against its base model", [("text", text), ("table", base_tests)]))
    for axis in ablation_axes(results):
        name = f"ablation_{axis}.png"
        figures[name] = plot_ablation(results, axis)
        summary = _text(format_intervals(ablation_table(results, axis)))
        text = "Each run's final-iteration score: mean ± 95% CI half-width across seeds, n seeds."
        winners = best_by_method(results, axis)
        winners[axis] = winners[axis].map(format_value)  # 1e-05, not 0.0 at two decimals
        best = _text(winners.set_index("method"))
        rule = (f"Per method, the `{axis}` with the highest mean final-iteration `average` (ties: the smallest): the "
                "tuning rule of docs/tuning.md.")  # fmt: skip
        sections.append(("##", f"Ablation: {axis}", [("text", text), ("table", summary), ("image", name),
                                                     ("text", rule), ("table", best)]))  # fmt: skip
        printed.append(f"highest mean final-iteration average per method, by {axis}\n{best}")
    if diagnostics is not None:
        bases = base_table(diagnostics)
        if len(bases):
            # 3 decimals: `recent_gain` is compared with `min_delta` (0.01), which 2 would round it to
            table = _text(bases.set_index(list(bases.columns[: bases.columns.get_loc("seed") + 1])), 3)
            sections.append(("##", "The base models", [("text", BASES), ("table", table)]))
            printed.append(base_sentence(bases))
        figures["diagnostics.png"] = plot_diagnostics(diagnostics)
        learning = learning_table(diagnostics)
        items: list[tuple[str, str]] = []
        if len(learning):
            said = learning_sentences(learning)
            items += [("text", LEARNING), ("text", "\n\n".join(said)), ("table", _text(learning, 3))]
            printed.append("\n".join(said))
            seeds = seed_learning_table(diagnostics)
            if (seeds["verdict"] != "untested").any():
                items += [("text", SEEDS), ("table", _text(_by_seed(seeds)))]
        learned = objective_table(diagnostics)
        if len(learned):
            objectives = _text(format_intervals(learned, 3))  # nats and shares: 1 decimal would read 0.0 ± 0.0
            items += [("text", OBJECTIVES), ("table", objectives)]
            printed.append(f"what each arm learned (held-out; mean ± 95% CI)\n{objectives}")
        sections.append(("##", "Diagnostics: what each arm learned", [*items, ("image", "diagnostics.png")]))
    files = {name: png_bytes(fig) for name, fig in figures.items()}
    files["report.md"] = _markdown(sections).encode()
    if html_page:
        files["report.html"] = _html(title, sections, files).encode()
    return "\n\n".join(printed), files


def write_files(out: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        atomic_write_bytes(Path(out) / name, data)


def write_report(study_dir: Path) -> str:
    """Write the study's report into `study_dir` and return its summary (`render`; no results: a note, no
    files)."""
    study_dir = Path(study_dir)
    if not any(p.stat().st_size for p in study_dir.glob("*/results.jsonl")):
        return "(no results)"
    summary, files = render([study_dir])
    write_files(study_dir, files)
    return summary


def _by_seed(seeds: pd.DataFrame) -> pd.DataFrame:
    """`seed_learning_table` as a wide text table: rows (variant, iteration), one column per seed; runs that share
    all three (the same study read from two paths: a rerun beside the original) share a cell, joined by " | "."""
    cells = [f"{r.value:.3f}" + ("" if r.verdict == "untested" else f" [{r.ci_low:.3f}, {r.ci_high:.3f}] {r.verdict}")
             for r in seeds.itertuples()]  # fmt: skip
    wide = seeds.assign(cell=cells).groupby(["variant", "iteration", "seed"], sort=False)["cell"].agg(" | ".join)
    return wide.unstack("seed").rename(columns=lambda seed: f"seed {seed}").fillna("")


def _text(frame: pd.DataFrame, decimals: int = 2) -> str:
    """A table as the report and the console print it: values rounded to `decimals`."""
    return str(frame.round(decimals).to_string())


def _markdown(sections: list[Any]) -> str:
    parts = []
    for level, heading, items in sections:
        parts.append(f"{level} {heading}")
        for kind, body in items:
            parts.append({"table": f"```\n{body}\n```", "text": body, "image": f"![{body}]({body})"}[kind])
    return "\n\n".join(parts) + "\n"


def _html(title: str, sections: list[Any], files: Mapping[str, bytes]) -> str:
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

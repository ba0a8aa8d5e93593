"""Statistics over the tidy results frame (`load_results`): score tables, 95% CIs across seeds, paired tests.

A *variant* is what tells runs apart apart from their seed: the method and its ablation axes' values (and the
study, when a frame holds several). Seeds are the replicates: every mean, CI and test here is across seeds.
Each seed trains its own base model, so two methods' runs of one seed in one study start from the same model:
that pairing is what `paired_test` uses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from spin_bench.paths import format_value
from spin_bench.results import average

PAIRED_COLUMNS = ["study", "treatment", "baseline", "iteration", "baseline_iteration", "n", "mean_difference",
                  "ci_low", "ci_high", "t", "p", "note"]  # fmt: skip


def ablation_axes(frame: pd.DataFrame) -> list[str]:
    """The axis columns (`frame.attrs["axes"]`, set by the loaders) that have a value in this frame."""
    return [a for a in frame.attrs.get("axes", []) if a in frame and frame[a].notna().any()]


def variant_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that identify a variant: `study` (only when the frame holds several), `method`, the axes."""
    return (["study"] if frame["study"].nunique() > 1 else []) + ["method", *ablation_axes(frame)]


def variant_label(keys: Sequence[str], values: Sequence) -> str:
    """`spin beta=0.05` (or `beta: spin beta=0.05` with a study key); axes without a value are left out."""
    named = dict(zip(keys, values, strict=True))
    axes = [f"{k}={format_value(v)}" for k, v in named.items() if k not in ("study", "method") and not missing(v)]
    label = " ".join([named["method"], *axes])
    return f"{named['study']}: {label}" if "study" in named else label


def score_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows (variant keys..., seed, iteration), one column per headline metric in %, and `average`: the suite's
    average (spin_bench.results.average) of the row's headline scores. The study table `spin-bench` prints."""
    keys = [*variant_keys(frame), "seed", "iteration"]
    headline = frame[frame["headline"]] if "headline" in frame else frame
    table = headline.groupby([*keys, "column"], dropna=False)["score"].mean().unstack("column")
    table["average"] = [average(row.dropna().to_dict(), list(row.dropna().index)) for _, row in table.iterrows()]
    return table


def mean_ci(frame: pd.DataFrame, by: Sequence[str], value: str, level: float = 0.95) -> pd.DataFrame:
    """Per group of `by`: n (rows with a value), mean, and the Student-t CI of the mean at `level`:
    mean +- t_{(1+level)/2, n-1} * sd / sqrt(n) (`half_width`; NaN when n < 2)."""
    summary = frame.groupby(list(by), dropna=False)[value].agg(["count", "mean", "sem"])
    half = stats.t.ppf(0.5 + level / 2, summary["count"] - 1) * summary["sem"]
    return pd.DataFrame({"n": summary["count"], "mean": summary["mean"], "half_width": half,
                         "ci_low": summary["mean"] - half, "ci_high": summary["mean"] + half})  # fmt: skip


def confidence_intervals(frame: pd.DataFrame, by: Iterable[str] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Mean and CI across seeds of every score-table column (task metrics and `average`, in %), per group of
    `by` (default: variant keys and iteration, so n = the seeds of each variant). Rows (by..., column);
    columns n, mean, half_width, ci_low, ci_high (`mean_ci`)."""
    table = score_table(frame)
    by = [k for k in table.index.names if k != "seed"] if by is None else list(by)
    return mean_ci(_long(table), [*by, "column"], "score", level)


def format_intervals(intervals: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """`confidence_intervals` as a wide text table: one column per score column, cells `mean ± half_width` (just
    `mean` where one seed gives no interval), and `n` (the largest n of the row's cells)."""
    half = intervals["half_width"].map(lambda h: "" if pd.isna(h) else f" ± {h:.{digits}f}")
    cells = intervals["mean"].map(lambda m: f"{m:.{digits}f}") + half
    wide = cells.unstack("column")
    wide["n"] = intervals["n"].groupby(level=list(intervals.index.names[:-1]), dropna=False).max()
    return wide


def final_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's score-table row at its last iteration (runs may stop early, or differ in `iterations`)."""
    table = score_table(frame)
    return table.groupby(level=[k for k in table.index.names if k != "iteration"], dropna=False).tail(1)


def ablation_table(frame: pd.DataFrame, axis: str, level: float = 0.95) -> pd.DataFrame:
    """Final-iteration mean and CI across seeds per variant (`axis` among its keys) and column, over the runs
    that have a value for `axis`."""
    runs = frame[frame[axis].notna()]
    return mean_ci(_long(final_scores(runs)), [*variant_keys(runs), "column"], "score", level)


def best_by_method(frame: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The tuning rule (docs/tuning.md): per method, the value of `axis` whose runs have the highest mean
    final-iteration `average` across seeds; on a tie, the smallest value. Rows: method, the axis, mean, n."""
    table = ablation_table(frame, axis)
    averages = table.xs("average", level="column").reset_index()
    rows = []
    for method, runs in averages.groupby("method"):
        best = runs.sort_values(axis, key=_numbers_first).loc[lambda r: r["mean"] == r["mean"].max()].iloc[0]
        rows.append({"method": method, axis: best[axis], "mean": best["mean"], "n": int(best["n"])})
    return pd.DataFrame(rows, columns=["method", axis, "mean", "n"])


def _numbers_first(values: pd.Series) -> pd.Series:
    """Sort keys for an axis whose values mix numbers and words (`history`: 1, 2 and `null`): numbers by value,
    then words by name."""
    return values.map(lambda v: (1, v) if isinstance(v, str) else (0, v))


def paired_test(
    frame: pd.DataFrame,
    treatment: str = "spin",
    baselines: Sequence[str] = ("sft", "dpo"),
    iteration: int | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Paired t-test (`scipy.stats.ttest_rel`) over seeds of the `average` score: each variant of `treatment`
    against each variant of each baseline in the same study that matches it (every ablation axis the baseline
    has a value for holds the treatment's value: `spin iterations=3` against `sft iterations=3`, not 5; a
    baseline without a `beta` against every `spin beta=...`), pairing the runs that share a seed (hence a base
    model). At `iteration`, or by default each variant's last iteration; a seed missing there is not paired.
    One row per comparison: n pairs, mean difference (treatment - baseline, in points), its CI at `level`, t, p.
    With fewer than 2 pairs, or differences that do not vary, the statistics are NaN and `note` says why."""
    axes = ablation_axes(frame)
    rows = []
    for study, runs in _averages(frame).groupby("study"):
        for label, values, at, a in _variants(runs, treatment, axes, iteration):
            for baseline in baselines:
                for b_label, b_values, b_at, b in _variants(runs, baseline, axes, iteration):
                    if any(not missing(v) and (missing(values[k]) or v != values[k]) for k, v in b_values.items()):
                        continue  # another setting of an axis both have: not the same experiment
                    compared = {"study": study, "treatment": label, "baseline": b_label, "iteration": at}
                    rows.append(compared | {"baseline_iteration": b_at} | ttest_paired(a, b, level))
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def against_base(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Paired t-test over seeds of every variant's `average` at its last iteration against its iteration 0 (the
    base model of the same seed): the paper's first question for every arm and ablation setting of a study, in
    the columns of `paired_test` (`baseline` = "base model")."""
    axes = ablation_axes(frame)
    rows = []
    for study, runs in _averages(frame).groupby("study"):
        for method in sorted(runs["method"].unique()):
            base = {label: scores for label, _, _, scores in _variants(runs, method, axes, 0)}
            for label, _, at, scores in _variants(runs, method, axes, None):
                compared = {"study": study, "treatment": label, "baseline": "base model", "iteration": at}
                rows.append(compared | {"baseline_iteration": 0} | ttest_paired(scores, base[label], level))
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def _averages(frame: pd.DataFrame) -> pd.DataFrame:
    """The `average` of every run and iteration as rows, with their study."""
    average = score_table(frame)["average"].reset_index()
    if "study" not in average:
        average.insert(0, "study", frame["study"].iloc[0])
    return average


def _variants(runs: pd.DataFrame, method: str, axes: list[str],
              iteration: int | None) -> Iterator[tuple[str, dict[str, Any], int, pd.Series]]:  # fmt: skip
    """(label, {axis: value}, iteration, average by seed) for each variant of `method` among `runs` (one study's
    averages)."""
    chosen = runs[runs["method"] == method]
    for values, variant in chosen.groupby(["method", *axes], dropna=False):
        at = variant["iteration"].max() if iteration is None else iteration
        scores = variant[variant["iteration"] == at].set_index("seed")["average"]
        yield variant_label(["method", *axes], values), dict(zip(axes, values[1:], strict=True)), int(at), scores


def ttest_paired(a: pd.Series, b: pd.Series, level: float = 0.95) -> dict:
    """Paired t-test of a - b over the index labels (seeds) both have a value for: n, mean difference, its CI at
    `level`, t, p, and a `note` when the test is undefined (fewer than 2 pairs, or differences that do not vary)."""
    pairs = pd.concat([a, b], axis=1, join="inner").dropna()
    a, b = pairs.iloc[:, 0], pairs.iloc[:, 1]
    n, mean = len(a), float((a - b).mean()) if len(a) else math.nan
    if n < 2:
        return {"n": n, "mean_difference": mean, "ci_low": math.nan, "ci_high": math.nan, "t": math.nan,
                "p": math.nan, "note": f"fewer than 2 paired seeds (n={n}): no test"}  # fmt: skip
    with warnings.catch_warnings():  # identical differences: scipy warns and returns NaN, said in `note` instead
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(a, b)
        ci = result.confidence_interval(level)
    note = "" if np.isfinite(result.statistic) else "the paired differences do not vary: t undefined"
    return {"n": n, "mean_difference": mean, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "t": float(result.statistic), "p": float(result.pvalue), "note": note}  # fmt: skip


def _long(table: pd.DataFrame) -> pd.DataFrame:
    """A score table -> rows (index keys..., column, score), without the empty cells."""
    long = table.melt(ignore_index=False, var_name="column", value_name="score").reset_index()
    return long.dropna(subset=["score"])


def missing(value: Any) -> bool:
    """A frame cell or record value that holds nothing: None, pandas' NA or a float NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# What the report's objective table shows (diagnostics.jsonl keys): the held-out objective of each arm.
OBJECTIVE_KEYS = ["heldout_real/logp_vs_base", "heldout_real/answer_entropy", "heldout/rewards/accuracies",
                  "heldout/pairs/ches_normalised", "generated_correct"]  # fmt: skip


def objective_table(
    diagnostics: pd.DataFrame, keys: Sequence[str] = OBJECTIVE_KEYS, level: float = 0.95
) -> pd.DataFrame:
    """Mean and CI across seeds of the diagnostics `keys` that the runs logged, per variant and iteration, in the
    shape of `confidence_intervals` (rows (variant keys..., iteration, column)), for `format_intervals`."""
    present = [k for k in keys if k in diagnostics and diagnostics[k].notna().any()]
    if not present:
        return pd.DataFrame()
    by = [*variant_keys(diagnostics), "iteration"]
    long = diagnostics.melt(id_vars=by, value_vars=present, var_name="column", value_name="value").dropna(
        subset=["value"]
    )
    long["column"] = long["column"].str.replace("/", " ", n=1)
    return mean_ci(long, [*by, "column"], "value", level)


BASE_COLUMNS = ["seed", "epochs_trained", "heldout_loss_first", "heldout_loss_last", "recent_gain", "plateaued", "runs"]


def base_table(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """One row per base model the runs started from (iteration 0's `base/` keys; runs of one seed and study share
    theirs): its seed, the ablation axes' values where every run that shares it has the same one (a model size;
    not a learning rate, which only the arms see), the epochs its SFT took (`epochs_trained`: not `epochs`, the
    label of a `model.base_sft.epochs` or `method.recipe.epochs` axis), its held-out SFT loss (nats per token)
    after the first and the last epoch, what the last `patience` epochs gained on the best before them, whether
    it met its plateau criterion, and how many runs start from it. Empty without `base/` keys (a given
    checkpoint, or runs made before they were logged)."""
    if "base/heldout_curve" not in diagnostics:
        return pd.DataFrame(columns=BASE_COLUMNS)
    base = diagnostics[(diagnostics["iteration"] == 0) & diagnostics["base/heldout_curve"].notna()]
    by = [k for k in variant_keys(diagnostics) if k != "method"]
    rows = []
    for (study, seed, curve), runs in base.groupby(
        [base["study"], base["seed"], base["base/heldout_curve"].map(tuple)], sort=True
    ):
        shared = {k: runs[k].iloc[0] for k in by if k != "study" and runs[k].nunique(dropna=False) == 1}
        first = runs.iloc[0].to_dict()  # runs from before a key was logged lack it (docs/results.md)
        rows.append({"study": study, **shared, "seed": seed, "epochs_trained": len(curve),
                     "heldout_loss_first": curve[0], "heldout_loss_last": curve[-1],
                     "recent_gain": first.get("base/recent_gain", math.nan),
                     "plateaued": _true(first.get("base/plateaued")), "runs": len(runs)})  # fmt: skip
    keys = ["study"] if "study" in by else []
    axes = [k for k in by if k != "study" and any(k in r for r in rows)]
    table = pd.DataFrame(rows, columns=[*keys, *axes, *BASE_COLUMNS])
    return table.sort_values([*keys, *axes, "seed"], key=_numbers_first, ignore_index=True)


def _true(value: Any) -> bool:
    """A stored flag read from a frame cell: True only for a true bool (a missing one is NaN, which bool() calls
    true)."""
    return isinstance(value, (bool, np.bool_)) and bool(value)

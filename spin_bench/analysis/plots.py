"""Figures of the tidy frames: scores over iterations, ablations, self-play diagnostics.

Each function returns a matplotlib `Figure` built without pyplot (no global state, nothing to close; it renders
with the Agg canvas, no display needed). Lines are means across seeds; bands and error bars their 95% Student-t
CIs (absent where a variant has one seed). `save_png` writes one atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from spin_bench.analysis.stats import (
    ablation_table,
    confidence_intervals,
    mean_ci,
    score_table,
    variant_keys,
    variant_label,
)
from spin_bench.paths import format_value
from spin_bench.stages import atomic_write_bytes

PANEL = 3.2  # inches per panel
# The diagnostics figure: (panel title, [(diagnostics.jsonl key, line label)]), keys that a run lacks are skipped.
DIAGNOSTIC_PANELS = [
    ("reward accuracy (real > generated)", [("heldout/rewards/accuracies", "held-out"),
                                            ("train/rewards/accuracies", "train")]),
    ("reward margin (real - generated)", [("heldout/rewards/margins", "held-out"), ("train/rewards/margins", "train")]),
    ("log-prob: real vs generated", [("heldout/logps/chosen", "real, held-out"),
                                     ("heldout/logps/rejected", "generated, held-out"),
                                     ("train/logps/chosen", "real, train"),
                                     ("train/logps/rejected", "generated, train")]),
    ("answer length (chars)", [("real_chars", "real"), ("generated_chars", "generated")]),
    ("held-out real answers: log p - base (nats)", [("heldout_real/logp_vs_base", "log p vs base")]),
    ("entropy of the next token (nats)", [("heldout_real/answer_entropy", "final-answer digits"),
                                          ("heldout_real/entropy", "every answer token")]),
    ("pair similarity (CHES, normalised)", [("heldout/pairs/ches_normalised", "held-out pairs")]),
    ("generated answers correct (share)", [("generated_correct", "self-play answers")]),
]  # fmt: skip
STYLES = ["-", "--", ":", "-."]


def plot_scores(frame: pd.DataFrame) -> Figure:
    """Score (%) vs iteration, one line per variant with its CI band across seeds; one panel per task metric
    and one for `average`."""
    intervals = confidence_intervals(frame)
    keys = variant_keys(frame)
    columns = list(score_table(frame).columns)
    fig, panels = _panels(len(columns))
    colors = _colors(intervals, keys)
    for ax, column in zip(panels, columns, strict=True):
        for variant, summary in intervals.xs(column, level="column").groupby(level=keys, dropna=False):
            label = variant_label(keys, variant)
            _band(ax, summary.index.get_level_values("iteration"), summary, colors[label])
        _titles(ax, column, "iteration")
    panels[0].set_ylabel("score (%)")
    _legend(fig, colors)
    return fig


def plot_ablation(frame: pd.DataFrame, axis: str) -> Figure:
    """Final-iteration score (%) vs the values of ablation `axis` (evenly spaced, in sorted order), one line per
    variant of the other keys (the method, other axes), CI error bars across seeds; panels `average`, then each
    task metric. Only runs with a value for `axis` take part."""
    table = ablation_table(frame, axis)
    keys = list(table.index.names[:-1])
    others = [k for k in keys if k != axis]
    values = sorted(table.index.get_level_values(axis).unique(), key=lambda v: (isinstance(v, str), v))
    columns = ["average", *sorted(c for c in table.index.get_level_values("column").unique() if c != "average")]
    fig, panels = _panels(len(columns))
    colors = _colors(table.droplevel(axis), others)
    for ax, column in zip(panels, columns, strict=True):
        for variant, line in table.xs(column, level="column").reset_index().groupby(others, dropna=False):
            ax.errorbar(line[axis].map(values.index), line["mean"], yerr=line["half_width"], marker="o", capsize=3,
                        color=colors[variant_label(others, variant)])  # fmt: skip
        _titles(ax, column, axis)
        ax.set_xticks(range(len(values)), [format_value(v) for v in values])
    panels[0].set_ylabel("score (%), final iteration")
    _legend(fig, colors)
    return fig


def plot_diagnostics(diagnostics: pd.DataFrame) -> Figure:
    """Self-play diagnostics over iterations (`load_diagnostics`), one panel each of DIAGNOSTIC_PANELS: reward
    accuracy and margin of real over generated answers (held-out pairs and training), log-probs of real vs
    generated answers, and answer lengths. One colour per variant, one line style per key, CI bands across seeds.
    Keys a run lacks (sft logs no rewards; small runs may log no training metrics) draw nothing."""
    keys = variant_keys(diagnostics)
    fig, panels = _panels(len(DIAGNOSTIC_PANELS))
    colors, drawn = _colors(diagnostics.set_index(keys), keys), {}
    for ax, (title, lines) in zip(panels, DIAGNOSTIC_PANELS, strict=True):
        styles = {}
        for style, (key, name) in zip(STYLES, lines, strict=False):
            if key not in diagnostics:  # no run logged it
                continue
            present = diagnostics.dropna(subset=[key])
            for variant, part in mean_ci(present, [*keys, "iteration"], key).groupby(level=keys, dropna=False):
                label = variant_label(keys, variant)
                drawn[label] = styles[name] = style
                _band(ax, part.index.get_level_values("iteration"), part, colors[label], style)
        if styles:
            ax.legend(handles=[Line2D([], [], color="0.3", linestyle=s, label=n) for n, s in styles.items()],
                      fontsize=7)  # fmt: skip
        else:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", va="center", transform=ax.transAxes)
        _titles(ax, title, "iteration")
    _legend(fig, {label: color for label, color in colors.items() if label in drawn})
    return fig


def png_bytes(fig: Figure, dpi: int = 120) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG in one piece (spin_bench.stages.atomic_write_bytes); returns the path."""
    atomic_write_bytes(Path(path), png_bytes(fig, dpi))
    return Path(path)


def _panels(n: int) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(PANEL * n + 1.5, PANEL + 0.3), layout="constrained")
    return fig, list(fig.subplots(1, n, squeeze=False)[0])


def _colors(indexed: pd.DataFrame, keys: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per variant label (the distinct values of `keys` in the index): one hue per method (C0, C1,
    ... in sorted order), and within a method one shade per variant, light to dark in sorted order, so a sweep's
    15 variants never reuse a colour across methods and the method stays readable from the colour alone."""
    variants = [v if isinstance(v, tuple) else (v,) for v in indexed.groupby(level=keys, dropna=False).size().index]
    method = keys.index("method") if "method" in keys else None
    hues = sorted({v[method] for v in variants}) if method is not None else [None]
    colors = {}
    for hue, name in enumerate(hues):
        mine = [v for v in variants if method is None or v[method] == name]
        base = np.array(to_rgb(f"C{hue % 10}"))
        for shade, variant in enumerate(mine, start=1):
            strength = 0.35 + 0.65 * shade / len(mine)  # 1.0: the hue itself; lower: blended towards white
            colors[variant_label(keys, variant)] = tuple(1 - (1 - base) * strength)
    return colors


def _band(ax: Axes, x: Any, summary: pd.DataFrame, color: Any, linestyle: str = "-") -> None:
    """A mean line with markers and its CI band (`mean_ci` columns)."""
    ax.plot(x, summary["mean"], marker="o", markersize=3, color=color, linestyle=linestyle)
    ax.fill_between(x, summary["ci_low"], summary["ci_high"], color=color, alpha=0.15, linewidth=0)


def _titles(ax: Axes, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    cast(MaxNLocator, ax.xaxis.get_major_locator()).set_params(integer=True)  # the default AutoLocator is one


def _legend(fig: Figure, colors: dict) -> None:
    """One legend for the figure, right of the panels: a line per variant."""
    handles = [Line2D([], [], color=color, marker="o", markersize=3, label=label) for label, color in colors.items()]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)

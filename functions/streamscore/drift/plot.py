"""A PNG of a drift report: the score and the most drifted features, window against baseline, bin by bin.

matplotlib is imported only when a picture is drawn (PlottingLayer in Lambda),
through its object-oriented API on the Agg canvas: no pyplot, no global backend.
"""

from __future__ import annotations

import io
import itertools
from typing import TYPE_CHECKING

from streamscore.drift.report import PLOTTED_FEATURES, DriftReport, VariableDrift

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLUMNS = 3
STATUS_COLOURS = {
    "drift": "#c0392b",
    "warn": "#e67e22",
    "ok": "#27ae60",
    "insufficient_data": "#7f8c8d",
}
BASELINE_COLOUR = "#95a5a6"


def bin_labels(edges: tuple[float, ...] | list[float]) -> list[str]:
    """One label per bin, "lower to upper" with 3 significant digits, then the out-of-range bin."""
    labels = [f"{lo:.3g} to {hi:.3g}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, "out of range"]


def draw_report(report: DriftReport, features: int = PLOTTED_FEATURES, dpi: int = 100) -> bytes:
    """PNG bytes: the score's panel first, then up to `features` features by PSI, largest first."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - lazy, see module doc
    from matplotlib.figure import Figure  # noqa: PLC0415

    panels = [report.prediction, *report.most_drifted(features)]
    rows = -(-len(panels) // COLUMNS)
    figure = Figure(figsize=(5.2 * COLUMNS, 3.6 * rows + 0.8), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, COLUMNS, squeeze=False).ravel()
    for ax, variable in zip(axes, panels, strict=False):
        _draw_variable(ax, variable)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    sample = report.sample()
    warm_up = report.warm_up()
    history = (
        f"  ·  cards known < {warm_up['settled_after_s'] / 86400:g} d: "
        f"{warm_up['young_share']:.0%} ({warm_up['status'].replace('_', ' ')})"
        if warm_up and warm_up["young_share"] is not None
        else ""
    )
    figure.suptitle(
        f"{report.status.upper()}  ·  model {report.model_version}  ·  "
        f"{report.window.start:%Y-%m-%d %H:%M} to {report.window.end:%Y-%m-%d %H:%M} UTC  ·  "
        f"n={sample['n']}, scored={sample['scored']}, "
        f"{report.totals.items_read} count items read{history}"
        + "".join(f"\n{line}" for line in shadow_lines(report)),
        fontsize=12,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def shadow_lines(report: DriftReport) -> list[str]:
    """Two lines per challenger beside its champion: agreement, rank correlation, decline rates."""
    lines = []
    for c in report.shadow:
        rates = c["decision_rates"]
        rho = c["rank_correlation"]
        agreement = c["agreement"]
        lines.append(f"challenger {c['challenger']} in shadow beside {c['champion']}, n={c['n']}:")
        lines.append(
            f"decisions agree {'-' if agreement is None else f'{agreement:.1%}'}, "
            f"rank correlation {'-' if rho is None else f'{rho:.3f}'}, decline rate "
            f"{_percent(rates['champion']['decline'])} vs {_percent(rates['challenger']['decline'])}"
            + (f", its own drift: {c['drift']['status'].replace('_', ' ')}" if "drift" in c else "")
        )
    return lines


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.2%}"


def _draw_variable(ax: Axes, variable: VariableDrift) -> None:
    labels = bin_labels(variable.reference.edges)
    positions = range(len(labels))
    width = 0.4
    observed = variable.observed or [0.0] * len(labels)
    colour = STATUS_COLOURS[variable.status]
    ax.bar([p - width / 2 for p in positions], variable.expected, width, color=BASELINE_COLOUR)
    ax.bar([p + width / 2 for p in positions], observed, width, color=colour)
    ax.set_xticks(list(positions), labels, rotation=45, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel("share", fontsize=8)
    stats = variable.stats
    ax.set_title(
        f"{variable.name}: {variable.status}\n"
        f"PSI {stats.psi:.3f}  JS {stats.js_distance:.3f}  KS {stats.ks:.3f}  n={stats.n}",
        fontsize=9,
        color=colour,
    )
    ax.legend(["baseline", "window"], fontsize=7, frameon=False)

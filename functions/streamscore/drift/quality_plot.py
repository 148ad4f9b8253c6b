"""A PNG of a quality check: realized against estimated quality, the precision-recall curve
of the quality bins, and each challenger against the champion on the same labelled
transactions; with the truth behind the labels when it is known (the local run's simulator).

Drawn from the figures the report holds (drift/quality.py), so it shows what the report says:
nothing is recomputed here. matplotlib is imported only when a picture is drawn (PlottingLayer
in Lambda), through its object-oriented API on the Agg canvas.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TRUTH, LABELLED, ESTIMATE = "#9aa5b1", "#2f6db5", "#e08a2c"
FIGURES = (
    ("recall_at_review", "recall\nat review"),
    ("precision_at_review", "precision\nat review"),
    ("recall_at_decline", "recall\nat decline"),
)


def draw_quality(
    version: str,
    figures: Mapping[str, Any],
    challengers: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "",
    by_decision: Mapping[str, Mapping[str, int]] | None = None,
    dpi: int = 100,
) -> bytes:
    """PNG bytes: `figures` ({"realized", "estimated"} of `version`), each challenger's paired
    figures (drift/quality.py `paired`) and, when known, the truth per decision against what the
    labels show (`by_decision`: transactions, frauds, labelled_fraud per decision)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - lazy
    from matplotlib.figure import Figure  # noqa: PLC0415

    challengers = challengers or {}
    panels = 2 + bool(by_decision) + bool(challengers)
    figure = Figure(figsize=(4.6 * panels, 4.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(1, panels, squeeze=False).ravel())
    if by_decision:
        _draw_labels(axes.pop(0), by_decision)
    _draw_figures(axes.pop(0), figures)
    _draw_curve(axes.pop(0), figures)
    if challengers:
        name, paired = sorted(challengers.items())[0]
        _draw_challenger(axes.pop(0), name, paired)
    figure.suptitle(
        title or f"Model quality of {version} from the labels production sees", fontsize=12
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_labels(ax: Axes, rows: Mapping[str, Mapping[str, int]]) -> None:
    """Per decision: the frauds there were, and those the labels show."""
    decisions = list(rows)
    x = range(len(decisions))
    truth = [rows[d].get("frauds", 0) for d in decisions]
    shown = [rows[d].get("labelled_fraud", 0) for d in decisions]
    ax.bar([i - 0.2 for i in x], truth, 0.4, color=TRUTH, label="frauds (simulator's truth)")
    ax.bar([i + 0.2 for i in x], shown, 0.4, color=LABELLED, label="labelled fraud")
    for i, (t, s) in enumerate(zip(truth, shown, strict=True)):
        ax.annotate(f"{s}/{t}", (i + 0.2, s), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), decisions)
    ax.set_title("Frauds and what the labels show", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.text(
        0.4,
        0.55,
        "a decline never settles:\nno chargeback comes back",
        transform=ax.transAxes,
        ha="center",
        fontsize=8,
        color="#555",
    )


def _draw_figures(ax: Axes, quality: Mapping[str, Any]) -> None:
    """Realized beside estimated, at both thresholds."""
    real, expect = quality["realized"], quality["estimated"]
    x = range(len(FIGURES))
    for offset, source, color, name in (
        (-0.2, real, LABELLED, "realized (labels)"),
        (0.2, expect, ESTIMATE, "estimated (scores)"),
    ):
        values = [source.get(key) for key, _ in FIGURES]
        ax.bar([i + offset for i in x], [v or 0.0 for v in values], 0.4, color=color, label=name)
        for i, v in enumerate(values):
            text = "n/a" if v is None else f"{v:.0%}"
            ax.annotate(text, (i + offset, v or 0.0), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), [label for _, label in FIGURES])
    ax.set_ylim(0, 1.12)
    ax.set_title("Realized (not declined) and estimated", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def _draw_curve(ax: Axes, quality: Mapping[str, Any]) -> None:
    """The precision-recall curve of the quality bins among approvals and reviews."""
    real = quality["realized"]
    points = real.get("pr_curve") or []
    if points:
        recall, precision = zip(*points, strict=True)
        ax.step(recall, precision, where="post", color=LABELLED)
        ax.plot(recall, precision, "o", color=LABELLED, markersize=3)
    area = real.get("pr_auc")
    bounds = (
        f"PR-AUC {area:.1%} [{real['pr_auc_low']:.1%}-{real['pr_auc_high']:.1%}]"
        if area is not None
        else "no fraud labelled"
    )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall", fontsize=9)
    ax.set_ylabel("precision", fontsize=9)
    ax.set_title(f"Precision-recall, not declined\n{bounds}", fontsize=10)


def _draw_challenger(ax: Axes, name: str, figures: Mapping[str, Any]) -> None:
    """Champion and challenger on the same labelled transactions."""
    keys = (
        ("recall_at_review", "recall\nat review"),
        ("recall_at_decline", "recall\nat decline"),
        ("pr_auc", "PR-AUC"),
    )
    x = range(len(keys))
    for offset, side, color in ((-0.2, "champion", LABELLED), (0.2, "challenger", ESTIMATE)):
        values = [figures[side].get(key) for key, _ in keys]
        ax.bar([i + offset for i in x], [v or 0.0 for v in values], 0.4, color=color, label=side)
        for i, v in enumerate(values):
            text = "n/a" if v is None else f"{v:.0%}"
            ax.annotate(text, (i + offset, v or 0.0), ha="center", va="bottom", fontsize=8)
    frauds = figures["champion"]["frauds"]
    ax.set_xticks(list(x), [label for _, label in keys])
    ax.set_ylim(0, 1.12)
    ax.set_title(f"Same labelled transactions ({frauds} frauds)\n{name}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")

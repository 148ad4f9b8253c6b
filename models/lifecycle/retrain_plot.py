"""The retrain report's picture: both models' precision-recall on the evaluation slice, and the
gate's intervals against its rules."""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw_retrain(report: Mapping[str, Any]) -> bytes:
    """PNG bytes of the report (one with a gate: a candidate was trained)."""
    figure, (curves, gate) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(1.3, 1))
    for name, colour in (("champion", "tab:blue"), ("candidate", "tab:orange")):
        curve = report["curves"][name]
        figures = report["gate"][name]
        label = (
            f"{name} {report[name]}: PR-AUC {figures['pr_auc']:.3f}, "
            f"recall at decline {figures['recall_at_decline']:.2f}"
        )
        curves.plot(curve["recall"], curve["precision"], color=colour, label=label)
    curves.set_xlabel("recall")
    curves.set_ylabel("precision")
    curves.set_xlim(0, 1)
    curves.set_ylim(0, 1.02)
    window = report["window"]
    curves.set_title(
        f"evaluation slice {window['evaluation_start'][:10]} to {window['end'][:10]}: "
        f"{report['gate']['frauds']} frauds",
        fontsize=9,
    )
    curves.legend(fontsize=7, loc="lower left")
    rules = (
        ("pr_auc_difference", "PR-AUC\ncandidate - champion", 0.0),
        (
            "recall_at_decline_difference",
            "recall at decline\ncandidate - champion",
            -float(report["policy"]["gate"]["recall_tolerance"]),
        ),
    )
    for row, (key, _, floor) in enumerate(rules):
        if key not in report["gate"]:
            continue
        figure_ = report["gate"][key]
        low, high = figure_["interval"]
        gate.plot([low, high], [row, row], color="black", linewidth=3)
        gate.plot([figure_["value"]], [row], "o", color="black")
        gate.plot([floor, floor], [row - 0.3, row + 0.3], color="tab:red", linestyle="--")
        gate.annotate(
            f"{figure_['value']:+.3f} [{low:+.3f}, {high:+.3f}]", (high, row + 0.15), fontsize=8
        )
    gate.set_yticks([0, 1], [label for _, label, _ in rules], fontsize=8)
    gate.set_ylim(-0.6, 1.6)
    gate.axvline(0, color="grey", linewidth=0.5)
    gate.set_title(
        f"gate: {report['verdict']} (95% intervals; dashed: the rule's floor)", fontsize=9
    )
    figure.suptitle(report["why"], fontsize=8)
    figure.tight_layout()
    out = BytesIO()
    figure.savefig(out, format="png", dpi=110)
    plt.close(figure)
    return out.getvalue()

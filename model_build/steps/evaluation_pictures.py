"""The evaluation's picture: the confusion matrix beside the model's and the baselines' (and the champion's) macro-F1."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import champion
import features
from baselines import (
    BASELINES_JSON_KEY,
    BEST_BASELINE_JSON_KEY,
    MAJORITY_CLASS,
    MARGIN_JSON_KEY,
    SENTIMENTS,
    TEXT_COLUMN,
    TFIDF_LOGISTIC_REGRESSION,
)


def plot_confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], report: dict[str, Any], path: Path
) -> None:
    """The confusion matrix, and beside it the model's accuracy and macro-F1 against each baseline's.

    The comparison sits on the same page because the matrix alone hides what the numbers mean: 0.64
    accuracy looks fine until the majority baseline beside it scores 0.64 too.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, (matrix_ax, bars_ax) = plt.subplots(
        1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1, 1.25]}
    )
    display = ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(SENTIMENTS),
        display_labels=[features.SENTIMENT_NAMES[label] for label in SENTIMENTS],
        cmap="Blues",
        colorbar=False,
        ax=matrix_ax,
    )
    display.ax_.set(
        title=f"Model on the test set ({len(y_true)} reviews)",
        xlabel="predicted sentiment",
        ylabel="true sentiment",
    )
    plot_comparison(bars_ax, report)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def baseline_label(name: str, entry: dict[str, Any]) -> str:
    """The bar panel's row name: what the baseline is, in words (the majority one names its class)."""
    if name == MAJORITY_CLASS:
        if "skipped" in entry:
            return "majority class"
        return (
            f"majority class\n(always {features.SENTIMENT_NAMES[entry['baseline']['predicted_sentiment']]})"
        )
    if name == TFIDF_LOGISTIC_REGRESSION:
        if "skipped" in entry:
            return "TF-IDF + logistic\nregression"
        on = "text" if entry["baseline"]["features"] == TEXT_COLUMN else "token ids"
        return f"TF-IDF + logistic\nregression ({on})"
    return name.replace("_", " ")


def plot_comparison(ax: Any, report: dict[str, Any]) -> None:
    """Horizontal bars: accuracy and macro-F1 of the model and of each baseline, values written on.

    A skipped baseline keeps its row, with the reason written where its bars would be: an empty row says
    more than a missing one.
    """
    import textwrap

    rows = [("model", report["metrics"])]
    scored_champion = report.get(champion.CHAMPION_JSON_KEY, {})
    if "skipped" not in scored_champion and scored_champion:  # no champion: no row, the title says so
        version = (scored_champion.get("model_package_arn") or "").rsplit("/", 1)[-1]
        rows.append((f"champion\n(version {version})" if version.isdigit() else "champion", scored_champion))
    rows += [(baseline_label(name, entry), entry) for name, entry in report[BASELINES_JSON_KEY].items()]
    height = 0.38
    for offset, (metric, label, color) in enumerate(
        (("accuracy", "accuracy", "#9ecae1"), ("f1_macro", "macro-F1", "#08519c"))
    ):
        scored = [
            (row, entry[metric]["value"]) for row, (_, entry) in enumerate(rows) if "skipped" not in entry
        ]
        bars = ax.barh(
            [row + (offset - 0.5) * height for row, _ in scored],
            [value for _, value in scored],
            height,
            label=label,
            color=color,
        )
        ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=9)
    for row, (_, entry) in enumerate(rows):
        if "skipped" in entry:
            note = textwrap.fill(f"not scored: {entry['skipped']}", width=48)
            ax.text(0.02, row, note, fontsize=8, color="#a50f15", va="center")
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the model on top
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("score on the test set")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=9, frameon=False)
    margin, best = report[MARGIN_JSON_KEY]["value"], report[BEST_BASELINE_JSON_KEY]["name"]
    if margin is None:
        ax.set_title("Model vs baselines\n(baselines not scored)", color="#a50f15")
    else:
        short = {MAJORITY_CLASS: "majority class", TFIDF_LOGISTIC_REGRESSION: "TF-IDF + LR"}.get(best, best)
        ax.set_title(f"Model vs baselines\nmacro-F1 margin over the best ({short}): {margin:+.3f}")
    check = report.get(champion.CHAMPION_CHECK_JSON_KEY)
    if check is not None:
        said = (
            "no champion"
            if check["outcome"] == champion.NO_CHAMPION_OUTCOME
            else f"vs champion {check['margin']:+.3f}: {check['outcome']}"
        )
        title = ax.set_title(f"{ax.get_title()}\n{said}")
        if not check["holds"]:
            title.set_color("#a50f15")

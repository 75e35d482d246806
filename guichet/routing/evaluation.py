"""Routing quality on a labelled file: the figures of the `evaluate_routing` contract.

Pure: reads JSONL, runs a classifier, computes metrics. The same code serves the command,
the promotion check of `train_router` and `bench/routing.py`, so the three agree.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guichet.routing.classifier import Embedder, RouterClassifier, expected_calibration_error
from guichet.routing.textprep import prepare

# The headline figures of an evaluation (the contract's scalar keys), in display order.
SUMMARY_KEYS = (
    "n",
    "accuracy",
    "macro_f1",
    "auto_rate",
    "auto_precision",
    "ext_recall",
    "ece",
    "latency_ms_p50",
    "latency_ms_p95",
)

class ExamplesFileError(ValueError):
    """A labelled file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class LabelledRow:
    subject: str
    body: str
    expected: str
    also: tuple[str, ...] = ()
    channel: str = ""


def rows_parse(lines: Iterable[str], *, source: str = "") -> list[LabelledRow]:
    """One JSON object a line: subject (may be empty), body, expected, optional also/channel.

    Extra fields are ignored; blank lines are skipped; anything else wrong stops the read
    with the line number, so a Région's export is fixed rather than half-loaded.
    """
    rows: list[LabelledRow] = []
    where = f"{source}:" if source else "ligne "
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExamplesFileError(f"{where}{number} : JSON invalide ({exc.msg})") from exc
        if not isinstance(data, dict):
            raise ExamplesFileError(f"{where}{number} : un objet JSON est attendu")
        expected = data.get("expected")
        if not isinstance(expected, str) or not expected.strip():
            raise ExamplesFileError(
                f"{where}{number} : le champ « expected » (code de l'annuaire) manque"
            )
        also = data.get("also") or []
        if isinstance(also, str):
            also = [also]
        rows.append(
            LabelledRow(
                subject=str(data.get("subject") or ""),
                body=str(data.get("body") or ""),
                expected=expected.strip(),
                also=tuple(str(code) for code in also if isinstance(code, str)),
                channel=str(data.get("channel") or ""),
            )
        )
    return rows


def rows_read(path: Path) -> list[LabelledRow]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return rows_parse(handle, source=str(path))
    except OSError as exc:
        raise ExamplesFileError(f"{path} : illisible ({exc.strerror or exc})") from exc


@dataclass(frozen=True)
class Prediction:
    code: str
    probability: float
    auto: bool
    latency_ms: float


def predictions_run(
    classifier: RouterClassifier,
    rows: Sequence[LabelledRow],
    *,
    on_item: Callable[[], None] | None = None,
) -> list[Prediction]:
    """Route each row one at a time, as intake does, timing each call."""
    out: list[Prediction] = []
    for row in rows:
        start = time.perf_counter()
        decision = classifier.predict(row.subject, row.body)
        elapsed = (time.perf_counter() - start) * 1000
        out.append(Prediction(decision.code, decision.probability, decision.auto, elapsed))
        if on_item is not None:
            on_item()
    return out


def metrics_compute(
    rows: Sequence[LabelledRow], predictions: Sequence[Prediction]
) -> dict[str, Any]:
    """The contract's figures. A prediction is right when it is the expected code."""
    n = len(rows)
    expected = [r.expected for r in rows]
    predicted = [p.code for p in predictions]
    correct = np.array([e == p for e, p in zip(expected, predicted, strict=True)], dtype=bool)
    # A multi-topic message sent to one of its other services is not lost, but still counted
    # wrong above; this looser figure is reported beside it.
    acceptable = np.array(
        [p.code == r.expected or p.code in r.also for r, p in zip(rows, predictions, strict=True)],
        dtype=bool,
    )
    confidence = np.array([p.probability for p in predictions], dtype=float)
    auto = np.array([p.auto for p in predictions], dtype=bool)
    latencies = np.array([p.latency_ms for p in predictions], dtype=float)
    ext = np.array([e.startswith("ext:") for e in expected], dtype=bool)
    per_code = _per_code(expected, predicted)
    f1s = [m["f1"] for m in per_code.values()]
    confusions = Counter((e, p) for e, p in zip(expected, predicted, strict=True) if e != p)
    return {
        "n": n,
        "accuracy": _ratio(correct.sum(), n),
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "auto_rate": _ratio(auto.sum(), n),
        "auto_precision": _ratio(correct[auto].sum(), auto.sum()),
        "ext_recall": _ratio(correct[ext].sum(), ext.sum()),
        "ece": round(expected_calibration_error(confidence, correct), 4) if n else 0.0,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2) if n else 0.0,
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2) if n else 0.0,
        "per_code": per_code,
        "confusions": [
            {"expected": e, "predicted": p, "count": c} for (e, p), c in confusions.most_common(10)
        ],
        "accuracy_with_also": _ratio(acceptable.sum(), n),
        "ext_sent_outside": _ratio(
            sum(
                1
                for e, p in zip(expected, predicted, strict=True)
                if e.startswith("ext:") and p.startswith("ext:")
            ),
            ext.sum(),
        ),
    }


def _ratio(numerator: Any, denominator: Any) -> float:
    return round(float(numerator) / float(denominator), 4) if denominator else 0.0


def _per_code(
    expected: Sequence[str], predicted: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    codes = sorted(set(expected) | set(predicted))
    result: dict[str, dict[str, float | int]] = {}
    for code in codes:
        tp = sum(1 for e, p in zip(expected, predicted, strict=True) if e == code and p == code)
        support = sum(1 for e in expected if e == code)
        guessed = sum(1 for p in predicted if p == code)
        precision = tp / guessed if guessed else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[code] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    return result


def predictions_batch(
    classifier: RouterClassifier, rows: Sequence[LabelledRow], *, embedder: Embedder | None = None
) -> list[Prediction]:
    """All rows at once: same decisions, faster; latency is the average, not per message."""
    if not rows:
        return []
    start = time.perf_counter()
    probabilities = classifier.predict_proba(
        [prepare(r.subject, r.body) for r in rows], embedder=embedder
    )
    average = (time.perf_counter() - start) * 1000 / len(rows)
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    limits = classifier.thresholds_for(best)
    return [
        Prediction(classifier.labels[int(b)], float(c), bool(c >= t), average)
        for b, c, t in zip(best, confidence, limits, strict=True)
    ]


def classifier_evaluate(
    classifier: RouterClassifier,
    rows: Sequence[LabelledRow],
    *,
    on_item: Callable[[], None] | None = None,
    batch: bool = False,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    predictions = (
        predictions_batch(classifier, rows, embedder=embedder)
        if batch
        else predictions_run(classifier, rows, on_item=on_item)
    )
    report = metrics_compute(rows, predictions)
    report["model_version"] = classifier.version
    return report


def report_format(report: dict[str, Any]) -> str:
    """The report as an agent reads it in a terminal."""
    lines = [
        f"Modèle : {report.get('model_version', '?')}",
        f"Messages : {report['n']}",
        f"Exactitude : {report['accuracy']:.3f}   F1 macro : {report['macro_f1']:.3f}",
        f"Orientation automatique : {report['auto_rate']:.1%} des demandes, justes à {report['auto_precision']:.1%}",
        f"Rappel ext:* (autres autorités) : {report['ext_recall']:.3f}",
        f"Erreur de calibration (ECE) : {report['ece']:.3f}",
        f"Latence : p50 {report['latency_ms_p50']:.1f} ms, p95 {report['latency_ms_p95']:.1f} ms",
        "",
        f"{'code':<24} {'précision':>9} {'rappel':>7} {'F1':>6} {'n':>5}",
    ]
    for code, m in report["per_code"].items():
        lines.append(
            f"{code:<24} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>5}"
        )
    if report["confusions"]:
        lines += ["", "Confusions les plus fréquentes (attendu → prédit) :"]
        lines += [
            f"  {c['count']:>3} × {c['expected']} → {c['predicted']}" for c in report["confusions"]
        ]
    return "\n".join(lines)

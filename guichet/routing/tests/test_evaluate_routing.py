"""`guichet evaluate_routing FILE.jsonl [--json]`: the contract other teams run on their data."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from guichet.routing import training
from guichet.routing.evaluation import LabelledRow, Prediction, metrics_compute
from guichet.routing.models import LabelledExample, RouterModel

pytestmark = pytest.mark.django_db

CONTRACT_KEYS = {
    "n",
    "accuracy",
    "macro_f1",
    "auto_rate",
    "auto_precision",
    "ext_recall",
    "ece",
    "latency_ms_p50",
    "latency_ms_p95",
    "per_code",
    "confusions",
}

ROWS = [
    {
        "subject": "Chauffage en panne",
        "body": "Les radiateurs du lycée sont froids depuis lundi.",
        "expected": "lycees",
        "channel": "email",
        "id": 7,
    },
    {
        "subject": "",
        "body": "slt le car scolaire é pa passé ce matin a l'arret",
        "expected": "transports",
    },
    {
        "subject": "Train cancelled",
        "body": "The TER from Lyon was cancelled again.",
        "expected": "transports",
        "also": ["cabinet"],
    },
    {
        "subject": "Permis de conduire",
        "body": "Comment échanger mon permis étranger ?",
        "expected": "ext:etat",
    },
    {"subject": "", "body": "", "expected": "cabinet"},
    {"subject": "", "body": "😀😀😀", "expected": "cabinet"},
]


def _file(tmp_path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8"
    )
    return path


def _evaluate(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate_routing", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def trained(directory: dict[str, Any]) -> RouterModel:
    call_command("train_router", "--sample", "6", stdout=StringIO(), stderr=StringIO())
    return RouterModel.objects.get(is_active=True)


def test_json_report_has_every_contract_key(trained: RouterModel, tmp_path: Path) -> None:
    out, _ = _evaluate(str(_file(tmp_path)), "--json")
    lines = out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert CONTRACT_KEYS <= set(report)
    assert report["n"] == len(ROWS)
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["ece"] <= 1
    assert report["latency_ms_p95"] >= report["latency_ms_p50"] > 0
    assert set(report["per_code"]["transports"]) == {"precision", "recall", "f1", "support"}
    assert report["per_code"]["transports"]["support"] == 2
    assert all(set(c) == {"expected", "predicted", "count"} for c in report["confusions"])
    assert report["model_version"] == trained.version


def test_text_report_is_readable(trained: RouterModel, tmp_path: Path) -> None:
    out, _ = _evaluate(str(_file(tmp_path)))
    assert "Exactitude" in out and "F1 macro" in out and "ECE" in out and "p95" in out
    assert "transports" in out


def test_evaluation_never_trains_on_the_file(trained: RouterModel, tmp_path: Path) -> None:
    _evaluate(str(_file(tmp_path)), "--json")
    assert RouterModel.objects.count() == 1
    assert not LabelledExample.objects.exists()


def test_fresh_installation_trains_from_the_shipped_corpus_first(
    directory: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "SEED_SAMPLE_PER_CODE", 5)  # the full corpus takes a minute
    out, err = _evaluate(str(_file(tmp_path)), "--json")
    assert "Aucun modèle d'orientation actif" in err
    assert json.loads(out)["n"] == len(ROWS)
    model = RouterModel.objects.get(is_active=True)
    assert not LabelledExample.objects.exists()
    assert model.trained_on < 200


def test_corrupt_active_model_is_replaced_not_fatal(
    trained: RouterModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "SEED_SAMPLE_PER_CODE", 5)
    RouterModel.objects.update(payload=b"\x00broken")
    out, err = _evaluate(str(_file(tmp_path)), "--json")
    assert "illisible" in err
    assert json.loads(out)["n"] == len(ROWS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken\n", r"eval.jsonl:1 : JSON invalide"),
        ('{"body": "x"}\n', "expected"),
        ("\n\n", "aucun exemple"),
        ("[1, 2]\n", "objet JSON"),
    ],
)
def test_bad_files_are_refused_with_the_line(
    directory: dict[str, Any], tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        _evaluate(str(path))


def test_missing_file_is_a_clear_error(directory: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="illisible"):
        _evaluate(str(tmp_path / "nope.jsonl"))


def test_metrics_follow_their_definitions() -> None:
    rows = [
        LabelledRow("", "", "lycees"),
        LabelledRow("", "", "lycees"),
        LabelledRow("", "", "ext:caf"),
        LabelledRow("", "", "sport", also=("culture",)),
    ]
    predictions = [
        Prediction("lycees", 0.95, True, 2.0),
        Prediction("sport", 0.6, False, 4.0),
        Prediction("ext:caf", 0.9, True, 6.0),
        Prediction("culture", 0.8, True, 8.0),
    ]
    report = metrics_compute(rows, predictions)
    assert report["accuracy"] == 0.5
    assert report["accuracy_with_also"] == 0.75
    assert report["auto_rate"] == 0.75
    assert report["auto_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["ext_recall"] == 1.0
    assert report["per_code"]["lycees"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(0.6667, abs=1e-4),
        "support": 2,
    }
    assert report["confusions"][0]["count"] == 1
    assert report["latency_ms_p50"] == 5.0

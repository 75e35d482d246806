"""`guichet train_router` and the model store, through the command and the stored state."""

from __future__ import annotations

import json
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from guichet.core.models import AuditEvent
from guichet.directory.models import Service
from guichet.routing import model_store, training
from guichet.routing.classifier import TrainingConfig
from guichet.routing.models import LabelledExample, RouterModel

pytestmark = pytest.mark.django_db


def _train(*args: str) -> str:
    out = StringIO()
    call_command("train_router", "--sample", "6", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _fresh_store() -> Any:
    model_store.model_store_reset()
    yield
    model_store.model_store_reset()


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    return path


def test_first_training_builds_versions_and_activates_a_model(directory: dict[str, Any]) -> None:
    # when
    output = _train()
    # then
    model = RouterModel.objects.get()
    assert model.is_active and model.trained_on > 150
    assert model.metrics["cv"]["accuracy"] > 0.3
    assert model.metrics["comparison"]["n"] == 300  # the dev set, never trained on
    assert "promu (premier modèle)" in output
    assert AuditEvent.objects.filter(verb="router_model.activate", object_id=str(model.pk)).exists()


def test_if_missing_does_nothing_when_a_model_is_active(directory: dict[str, Any]) -> None:
    _train()
    output = _train("--if-missing")
    assert "déjà actif" in output
    assert RouterModel.objects.count() == 1


def test_retraining_compares_and_keeps_exactly_one_active_model(directory: dict[str, Any]) -> None:
    _train()
    first = RouterModel.objects.get()
    output = _train()
    assert RouterModel.objects.count() == 2
    assert RouterModel.objects.filter(is_active=True).count() == 1
    assert "Modèle actif : exactitude" in output
    second = RouterModel.objects.exclude(pk=first.pk).get()
    assert second.metrics["current"]["accuracy"] == first.metrics["comparison"]["accuracy"]


def test_a_worse_candidate_is_stored_but_not_promoted(directory: dict[str, Any]) -> None:
    # given: a good model is active
    _train()
    good = RouterModel.objects.get(is_active=True)
    # when: a candidate trained on two examples a code competes with it
    outcome = training.router_train(config=TrainingConfig(folds=2), seed_per_code=2)
    # then
    assert not outcome.promoted
    assert "baisse" in outcome.reason
    assert RouterModel.objects.get(is_active=True) == good


def test_examples_file_is_imported_before_training(
    directory: dict[str, Any], tmp_path: Path
) -> None:
    rows = [
        {
            "subject": "Cantine",
            "body": f"Le self du lycée n° {i} est fermé",
            "expected": "lycees",
            "extra": 1,
        }
        for i in range(5)
    ]
    path = _write(tmp_path / "archive.jsonl", rows)
    output = _train("--examples", str(path))
    assert "5 exemple(s) ajouté(s)" in output
    assert LabelledExample.objects.filter(source="import").count() == 5
    # Importing the same archive again adds nothing.
    assert "0 exemple(s) ajouté(s)" in _train("--examples", str(path), "--if-missing")
    assert LabelledExample.objects.count() == 5


def test_unknown_codes_are_refused_with_a_clear_message(
    directory: dict[str, Any], tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "archive.jsonl",
        [{"subject": "", "body": "Ports de plaisance", "expected": "ports"}],
    )
    with pytest.raises(
        CommandError, match=r"Codes absents de l'annuaire : ports.*--create-services"
    ):
        _train("--examples", str(path))
    assert not LabelledExample.objects.exists()
    assert not RouterModel.objects.exists()


def test_create_services_adds_the_missing_codes_as_services(
    directory: dict[str, Any], tmp_path: Path
) -> None:
    rows = [
        {
            "subject": "Port",
            "body": f"Anneau au port de plaisance n° {i}",
            "expected": "ports_maritimes",
        }
        for i in range(6)
    ]
    path = _write(tmp_path / "archive.jsonl", rows)
    _train("--examples", str(path), "--create-services")
    service = Service.objects.get(code="ports_maritimes")
    assert "à compléter" in service.description
    model = RouterModel.objects.get(is_active=True)
    assert "ports_maritimes" in model_store.active_classifier().labels  # type: ignore[union-attr]
    assert model.trained_on > 150


def test_unknown_outside_authority_is_refused_even_with_create_services(
    directory: dict[str, Any], tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "a.jsonl",
        [{"subject": "", "body": "Prefecture maritime", "expected": "ext:marine"}],
    )
    with pytest.raises(CommandError, match="Autorités extérieures inconnues"):
        _train("--examples", str(path), "--create-services")


def test_malformed_examples_file_names_the_line(directory: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"body": "ok", "expected": "lycees"}\n{not json\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r"bad.jsonl:2"):
        _train("--examples", str(path))


def test_interrupted_training_writes_nothing(directory: dict[str, Any]) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(training.TrainingInterrupted):
        training.router_train(stop=stop, seed_per_code=4)
    assert not RouterModel.objects.exists()


def test_model_store_serves_the_active_model_and_falls_back_when_it_is_missing_or_corrupt(
    directory: dict[str, Any],
) -> None:
    # no model: the router uses its rules
    assert model_store.classify_for_routing("Chauffage", "Radiateurs froids au lycée") is None
    _train()
    model_store.model_store_reset()
    decision = model_store.classify_for_routing(
        "Chauffage en panne", "Les radiateurs du lycée sont froids depuis lundi"
    )
    assert decision is not None
    assert decision.model_version == RouterModel.objects.get(is_active=True).version
    assert decision.code == "lycees"
    explanation = model_store.explanation_for(decision)
    assert "Mots qui ont pesé" in explanation and "lycees" in explanation
    assert explanation.startswith("Confiance insuffisante") != decision.auto
    # A damaged payload never breaks intake.
    RouterModel.objects.update(payload=b"garbage")
    model_store.model_store_reset()
    assert model_store.classify_for_routing("Chauffage", "Radiateurs froids") is None


def test_a_correction_becomes_a_weighted_training_example(directory: dict[str, Any]) -> None:
    LabelledExample.objects.create(
        subject="Car",
        body="Le car du collège est en retard",
        code="ext:departement",
        source="correction",
    )
    examples = training.training_examples(seed_per_code=1)
    corrections = [e for e in examples if e.body == "Le car du collège est en retard"]
    assert corrections and corrections[0].weight == training.CORRECTION_WEIGHT
    assert any(e.weight == training.DIRECTORY_WEIGHT for e in examples)

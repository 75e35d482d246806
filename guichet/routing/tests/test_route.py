"""route(): administrators' rules first, then the trained model, then the keywords."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from guichet.casework.models import RequestStatus
from guichet.casework.tests.factories import make_request
from guichet.conftest import PASSWORD
from guichet.routing import model_store
from guichet.routing.admin_rules import RuleSpec, pattern_error, rule_matching
from guichet.routing.models import LabelledExample, RouterModel, RoutingRecord, RoutingRule
from guichet.routing.retraining import router_retrain_if_due

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_store() -> Any:
    model_store.model_store_reset()
    yield
    model_store.model_store_reset()


def _train() -> None:
    call_command("train_router", "--sample", "8", stdout=StringIO(), stderr=StringIO())


def test_rule_matching_is_exact_and_ordered() -> None:
    rules = [
        RuleSpec(1, "Rectorat", "sender_domain", "ac-lyon.fr", "ext:rectorat"),
        RuleSpec(2, "Dossiers FEDER", "reference", r"\bFEDER-\d{4}-\d+\b", "europe"),
        RuleSpec(3, "Carte", "phrase", "carte Pass'Région", "jeunesse"),
    ]
    assert rule_matching(rules, sender_email="chef@dsden.ac-lyon.fr", text="x").rule_id == 1  # type: ignore[union-attr]
    assert rule_matching(rules, sender_email="a@b.fr", text="Dossier feder-2025-17 impayé").rule_id == 2  # type: ignore[union-attr]
    assert rule_matching(rules, sender_email="a@b.fr", text="Ma CARTE PASS REGION est perdue").rule_id == 3  # type: ignore[union-attr]
    assert rule_matching(rules, sender_email="a@notac-lyon.fr", text="rien") is None
    assert pattern_error("reference", "DOS-(") is not None and pattern_error("sender_domain", "a@b.fr") is not None


def test_an_admin_rule_wins_over_the_model_and_counts_its_matches(directory: dict[str, Any], admin_user: Any) -> None:
    _train()
    rule = RoutingRule.objects.create(name="Pièces FEDER", kind=RoutingRule.Kind.REFERENCE, pattern=r"\bDOS-\d{6}\b", service=directory["europe"])
    request = make_request(subject="Chauffage", body="Dossier DOS-123456 : le chauffage du lycée Ampère est en panne.")
    assert request.service is not None and request.service.code == "europe"
    record = request.routing_records.get()
    assert record.rule == rule and record.model_version == f"rule:{rule.pk}"

    admin_view = site._registry[RoutingRule]
    http = RequestFactory().get("/admin/routing/routingrule/")
    http.user = admin_user
    assert admin_view.get_queryset(http).get(pk=rule.pk).recent == 1  # type: ignore[attr-defined]


def test_the_trained_model_routes_and_explains(directory: dict[str, Any]) -> None:
    _train()
    request = make_request(subject="", body="Bonjour, mon TER entre Lyon et Grenoble a encore été supprimé ce matin, et les retards s'accumulent.")
    record = request.routing_records.get()
    assert record.model_version.startswith(RouterModel.objects.get(is_active=True).version)
    assert "Mots qui ont pesé" in record.explanation
    assert "« transports »" in record.explanation  # a small test model may not be confident enough to route


def test_without_a_model_keywords_still_route(directory: dict[str, Any]) -> None:
    assert not RouterModel.objects.exists()
    request = make_request(subject="", body="Le chauffage du lycée Ampère ne marche plus")
    assert request.routing_records.get().model_version == "rules-v0"


def test_reporting_a_wrong_routing_sends_it_back_and_corrections_become_examples(directory: dict[str, Any], agent_alice: Any, triage_tina: Any) -> None:
    request = make_request(subject="Cantine", body="La cantine du lycée Jean-Moulin ferme trop tôt le mercredi.")
    assert request.service.code == "lycees"
    alice = Client()
    assert alice.login(username="alice", password=PASSWORD)
    alice.post(f"/agent/demandes/{request.tracking_number}/signaler-erreur/", {"reason": "C'est un collège"})
    request.refresh_from_db()
    assert request.service is None and request.status == RequestStatus.RECEIVED
    assert RoutingRecord.objects.filter(request=request, source=RoutingRecord.Source.HUMAN, decided_by=agent_alice).exists()

    tina = Client()
    assert tina.login(username="tina", password=PASSWORD)
    tina.post(f"/agent/demandes/{request.tracking_number}/transmettre/", {"authority": "ext:departement", "reason": "Collège"})
    example = LabelledExample.objects.get(request=request)
    assert example.code == "ext:departement" and example.source == LabelledExample.Source.CORRECTION


def test_periodic_retraining_waits_for_corrections_and_the_period(directory: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from guichet.routing import training

    monkeypatch.setattr(training, "SEED_SAMPLE_PER_CODE", 8)  # the task retrains on the whole corpus
    assert router_retrain_if_due() is False  # no model yet: installation trains the first one
    _train()
    first = RouterModel.objects.get()
    RouterModel.objects.filter(pk=first.pk).update(created_at=timezone.now() - dt.timedelta(hours=settings.GUICHET_RETRAIN_HOURS + 1))
    assert router_retrain_if_due() is False  # nothing new to learn from
    LabelledExample.objects.create(subject="", body="Ma fille n'a pas reçu sa carte Pass'Région pour la rentrée", code="jeunesse", source=LabelledExample.Source.CORRECTION)
    router_retrain_if_due()
    assert RouterModel.objects.count() == 2

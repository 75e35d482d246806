"""Routing v0 on the shipped directory: the decoys a citizen's wording sets."""

from __future__ import annotations

from typing import Any

import pytest

from guichet.casework.tests.factories import make_request
from guichet.routing.rules import RuleScore, RuleSet, confidence_of, normalize, score_text

pytestmark = pytest.mark.django_db


def test_normalize_ignores_case_accents_and_punctuation() -> None:
    assert normalize("LYCÉE d'Ampère!") == " lycee d ampere "


def test_longer_phrases_weigh_more_and_confidence_reflects_the_margin() -> None:
    rules = [RuleSet("transports", ("car scolaire", "retard")), RuleSet("lycees", ("lycee",))]
    scores = score_text("Le car scolaire du lycée est en retard", rules)
    assert [s.code for s in scores] == ["transports", "lycees"]
    assert scores[0].score == 2.5
    assert confidence_of(scores) == pytest.approx(2.5 / 3.5, abs=1e-3)
    assert confidence_of([]) == 0.0
    assert confidence_of([RuleScore("x", 1.0, ("a",))]) == 0.5  # one weak word is not enough


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Le chauffage du lycée Ampère ne marche plus depuis lundi", "lycees"),
        ("Mon fils prend le car scolaire tous les matins et il est toujours en retard", "transports"),
        ("Je n'ai toujours pas reçu ma carte Pass'Région", "jeunesse"),
        ("Notre subvention FEDER n'a pas été versée", "europe"),
    ],
)
def test_clear_requests_are_routed_to_the_competent_service(directory: Any, text: str, expected: str) -> None:
    request = make_request(subject="", body=text)
    assert request.service is not None and request.service.code == expected
    record = request.routing_records.get()
    assert record.applied and record.model_version == "rules-v0" and expected in record.explanation


def test_outside_competence_below_the_transmission_bar_waits_in_triage(directory: Any, settings: Any) -> None:
    settings.GUICHET_AUTO_FORWARD_MIN_CONFIDENCE = 1.01
    request = make_request(subject="Passeport", body="Comment renouveler mon passeport et ma carte grise ?")
    assert request.service is None
    record = request.routing_records.get()
    assert record.authority is not None and record.authority.code == "ext:etat"
    assert not record.applied


def test_nothing_recognised_goes_to_triage(directory: Any) -> None:
    request = make_request(subject="", body="🙂🙂🙂")
    assert request.service is None and request.routing_records.get().confidence == 0.0

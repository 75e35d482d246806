from __future__ import annotations

import pytest

from guichet.routing.urgency import urgency_of


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Il y a une ODEUR DE GAZ dans le couloir du lycée !", "gaz"),
        ("Ma fille est harcelée tous les jours dans le car scolaire", "harcelement"),
        ("Je n'en peux plus, je veux mettre fin à mes jours", "detresse"),
        ("Un élève a été agressé à l'arrêt de bus", "violence"),
        ("The kids are bullied on the school bus", "harcelement"),
        ("Des fils électriques dénudés pendent dans la cour", "danger"),
    ],
)
def test_danger_and_distress_are_urgent(text: str, reason: str) -> None:
    verdict = urgency_of(text)
    assert verdict.urgent and reason in verdict.reasons
    assert "Signalement urgent" in verdict.explanation()


@pytest.mark.parametrize(
    "text",
    [
        "Le feu tricolore devant le lycée est en panne",
        "Pouvez-vous m'envoyer le formulaire de bourse ?",
        "Le feu d'artifice du 14 juillet",
        "",
    ],
)
def test_ordinary_requests_are_not(text: str) -> None:
    verdict = urgency_of(text)
    assert not verdict.urgent and verdict.explanation() == ""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from guichet.casework.campaigns import estimated_similarity, minhashes, shingles, similarity
from guichet.casework.models import Message, Priority
from guichet.casework.tests.factories import make_request
from guichet.conftest import PASSWORD
from guichet.core.models import OutgoingMail

pytestmark = pytest.mark.django_db

PETITION = (
    "Madame, Monsieur, nous, parents d'élèves du lycée Jean-Moulin, demandons que la cantine du lycée "
    "propose chaque jour un repas végétarien, que les produits locaux soient privilégiés et que les "
    "horaires d'ouverture soient élargis pour les élèves qui finissent tard. Nous comptons sur vous."
)


def test_fingerprints_find_near_duplicates_and_ignore_short_texts() -> None:
    base = shingles(PETITION)
    signed = shingles(PETITION + " Signé : Paul Martin, parent d'élève de seconde.")
    other = shingles("Le chauffage du lycée est en panne depuis trois semaines et personne ne vient le réparer malgré nos appels répétés au standard de la Région, les élèves travaillent en manteau et les professeurs aussi, c'est intenable.")
    assert similarity(base, signed) >= 0.7 > similarity(base, other)
    assert estimated_similarity(minhashes(base), minhashes(signed)) >= 0.5 > estimated_similarity(minhashes(base), minhashes(other))
    assert shingles("Bonjour, merci beaucoup.") == frozenset()


def test_petition_from_many_senders_is_one_campaign_with_one_answer(client: Client, directory: Any, agent_alice: Any) -> None:
    requests = [make_request(subject="Cantine", body=PETITION + f"\n\n{name}", email=f"{name.lower()}@example.org", name=name) for name in ("Paul", "Lina", "Omar")]
    unrelated = make_request(subject="Chauffage", body="Le chauffage du lycée Ampère est en panne depuis lundi, les élèves ont froid et les cours sont perturbés depuis une semaine entière sans aucune intervention du service.")
    for request in requests:
        request.refresh_from_db()
    assert requests[0].campaign is not None and {r.campaign_id for r in requests} == {requests[0].campaign_id}
    unrelated.refresh_from_db()
    assert unrelated.campaign_id is None

    assert client.login(username="alice", password=PASSWORD)
    page = client.get(f"/agent/demandes/{requests[0].tracking_number}/").content.decode()
    assert "3 soutiens" in page
    client.post(f"/agent/demandes/{requests[0].tracking_number}/repondre-campagne/", {"campagne-body": "Un menu végétarien sera proposé dès janvier."})
    replies = OutgoingMail.objects.filter(kind=OutgoingMail.Kind.REPLY)
    assert sorted(m.to_address for m in replies) == ["lina@example.org", "omar@example.org", "paul@example.org"]


def test_danger_is_flagged_urgent_and_shown_first(client: Client, directory: Any, agent_alice: Any) -> None:
    calm = make_request(subject="Cantine", body="Le menu de la cantine du lycée pourrait être plus varié.")
    urgent = make_request(subject="Lycée", body="Il y a une forte odeur de gaz dans le bâtiment B du lycée Ampère !")
    assert urgent.priority == Priority.HIGH and calm.priority == Priority.NORMAL
    assert urgent.messages.filter(direction=Message.Direction.INTERNAL, body_text__contains="gaz").exists()
    assert client.login(username="alice", password=PASSWORD)
    page = client.get("/agent/").content.decode()
    assert page.index(urgent.tracking_number) < page.index(calm.tracking_number)

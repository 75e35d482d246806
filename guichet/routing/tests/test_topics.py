"""A message about two matters becomes linked requests, acknowledged once."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from guichet.casework.tests.factories import make_request
from guichet.core.models import OutgoingMail
from guichet.routing import model_store

pytestmark = pytest.mark.django_db

TWO_MATTERS = (
    "Bonjour,\n\n"
    "Le TER de 7 h 12 entre Grenoble et Lyon est supprimé presque un jour sur deux depuis la rentrée, "
    "et mon abonnement annuel me coûte pourtant très cher chaque mois.\n\n"
    "Par ailleurs, ma fille de 17 ans n'a toujours pas reçu sa carte Pass'Région, alors que nous avons "
    "fait la demande en ligne en juillet pour ses manuels scolaires et sa licence de sport.\n\n"
    "Merci d'avance."
)




def test_two_matters_are_split_into_linked_requests_with_one_acknowledgement(directory: dict[str, Any], settings: Any) -> None:
    model_store.model_store_reset()
    call_command("train_router", "--sample", "60", stdout=StringIO(), stderr=StringIO())
    settings.GUICHET_SPLIT_MIN_CONFIDENCE = 0.5
    request = make_request(subject="Deux questions", body=TWO_MATTERS)
    parts = list(request.linked_requests.all())
    codes = {request.service.code if request.service else None} | {p.service.code for p in parts if p.service}
    assert codes == {"transports", "jeunesse"}, [(p.service, p.body_text[:60]) for p in parts]
    assert len(parts) == 1
    assert "Pass" in parts[0].body_text or "TER" in parts[0].body_text
    acknowledgements = OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT)
    assert acknowledgements.count() == 1
    assert parts[0].tracking_number in acknowledgements.get().body_text
    model_store.model_store_reset()


def test_a_single_matter_is_not_split(directory: dict[str, Any]) -> None:
    model_store.model_store_reset()
    call_command("train_router", "--sample", "8", stdout=StringIO(), stderr=StringIO())
    request = make_request(subject="TER", body="Le TER de 7 h 12 entre Grenoble et Lyon est supprimé presque un jour sur deux.\n\nC'est la troisième fois cette semaine que le TER du matin est supprimé sans annonce.")
    assert not request.linked_requests.exists()
    model_store.model_store_reset()

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from guichet.casework.models import Message
from guichet.casework.services import request_add_note
from guichet.casework.tests.factories import make_request

pytestmark = pytest.mark.django_db


def test_tracking_page_shows_status_thread_but_no_internal_note(client: Client, directory: Any, agent_alice: Any) -> None:
    request = make_request(subject="Cantine du lycée", body="La cantine du lycée Jean-Moulin ferme trop tôt.")
    request_add_note(actor=agent_alice, request=request, body="SECRET interne : voir le proviseur")
    response = client.get(f"/suivi/{request.public_id}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert request.tracking_number in page
    assert "La cantine du lycée Jean-Moulin ferme trop tôt." in page
    assert "Accusé de réception" in page
    assert "SECRET interne" not in page
    assert response["Cache-Control"] == "private, no-store"
    assert request.messages.filter(direction=Message.Direction.INTERNAL).count() == 1


def test_tracking_number_alone_reveals_nothing(client: Client, directory: Any) -> None:
    request = make_request(subject="x", body="y")
    assert client.get(f"/suivi/{request.tracking_number}/").status_code == 404
    assert client.get(f"/suivi/{request.public_id[:-1]}/").status_code == 404


def test_citizen_html_is_never_rendered_raw(client: Client, directory: Any) -> None:
    request = make_request(subject="<b>gras</b>", body="<script>alert('x')</script>")
    page = client.get(f"/suivi/{request.public_id}/").content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page

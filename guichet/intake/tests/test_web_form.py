"""The public form through Django's HTTP client: write, review, send, confirmation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from guichet.casework.models import Request
from guichet.intake.models import Submission

pytestmark = pytest.mark.django_db

VALID = {
    "kind": "person",
    "name": "Claire Dupont",
    "email": "claire.dupont@example.org",
    "subject": "Chauffage en panne",
    "message": "Le chauffage du lycée Ampère est en panne depuis lundi, les élèves ont froid.",
}


def _review(client: Client, data: dict[str, Any], **files: Any) -> Any:
    get = client.get(reverse("web:request_form"))
    token = re.search(r'name="form_token" value="([^"]+)"', get.content.decode()).group(1)  # type: ignore[union-attr]
    return client.post(reverse("web:request_form"), {**data, "form_token": token, **files})


def _signed_draft(response: Any) -> str:
    return re.search(r'name="draft" value="([^"]+)"', response.content.decode()).group(1)  # type: ignore[no-any-return, union-attr]


def test_write_review_send_shows_the_acknowledgement(client: Client, directory: Any, django_capture_on_commit_callbacks: Any) -> None:
    # given a citizen filled the form with a PDF attached
    pdf = SimpleUploadedFile("devis.pdf", b"%PDF-1.4 devis chauffage", content_type="application/pdf")
    review = _review(client, VALID, attachments=pdf)
    assert review.status_code == 200
    assert "Relisez votre demande" in review.content.decode()
    assert "devis.pdf" in review.content.decode()

    # when they send it
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("web:request_send"), {"draft": _signed_draft(review), "action": "send"}, follow=True)

    # then the confirmation page states the number and the legal mentions, and the request is routed
    request = Request.objects.get()
    page = response.content.decode()
    assert request.tracking_number in page
    assert "réputée rejetée" in page and "recours contentieux" in page
    assert request.service is not None and request.service.code == "lycees"
    assert request.service.email in page
    assert f"/suivi/{request.public_id}" in page
    assert request.messages.get(kind="citizen").attachments.get().content_type == "application/pdf"
    # and the acknowledgement email carries the same number
    from guichet.core.worker import GuichetWorker

    GuichetWorker(interval=0).drain()
    assert any(request.tracking_number in m.subject for m in mail.outbox)


def test_posting_the_same_form_twice_creates_one_request(client: Client, directory: Any) -> None:
    draft = _signed_draft(_review(client, VALID))
    first = client.post(reverse("web:request_send"), {"draft": draft, "action": "send"})
    second = client.post(reverse("web:request_send"), {"draft": draft, "action": "send"})
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Submission.objects.count() == 1 and Request.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"message": "   "}, "message", "Écrivez votre message"),
        ({"email": "pas-une-adresse"}, "email", "pas valide"),
        ({"email": "", "postal_address": ""}, "email", "adresse postale"),
        ({"siret": "123"}, "siret", "14 chiffres"),
    ],
)
def test_invalid_form_names_each_error_and_stores_nothing(client: Client, directory: Any, change: dict[str, str], field: str, message: str) -> None:
    response = _review(client, {**VALID, **change})
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page
    assert f'id="id_{field}"' in page and 'aria-invalid="true"' in page
    assert 'role="alert"' in page
    assert not Submission.objects.exists()


def test_attachment_over_the_limit_is_refused_clearly(client: Client, directory: Any, settings: Any) -> None:
    settings.GUICHET_MAX_REQUEST_BYTES = 1024 * 1024
    big = SimpleUploadedFile("plan.pdf", b"%PDF-1.4" + b"0" * (2 * 1024 * 1024), content_type="application/pdf")
    response = _review(client, VALID, attachments=big)
    assert response.status_code == 400
    assert "la limite est de 1 Mo" in response.content.decode()


def test_tampered_draft_is_refused(client: Client, directory: Any) -> None:
    draft = _signed_draft(_review(client, VALID))
    response = client.post(reverse("web:request_send"), {"draft": draft[:-3] + "abc", "action": "send"})
    assert response.status_code == 400
    assert not Submission.objects.exists()


def test_edit_goes_back_to_the_form_with_the_text_kept(client: Client, directory: Any) -> None:
    draft = _signed_draft(_review(client, VALID))
    response = client.post(reverse("web:request_send"), {"draft": draft, "action": "edit"})
    assert "Le chauffage du lycée Ampère" in response.content.decode()
    assert not Submission.objects.exists()


def test_public_form_is_rate_limited(client: Client, directory: Any, settings: Any) -> None:
    settings.GUICHET_PUBLIC_RATE_LIMIT = 3
    codes = [client.post(reverse("web:request_form"), {}).status_code for _ in range(5)]
    assert codes[:3] == [400, 400, 400]
    assert codes[3:] == [429, 429]


def test_pages_carry_security_headers(client: Client, directory: Any) -> None:
    response = client.get(reverse("web:request_form"))
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


def test_csrf_is_enforced_on_the_public_form(directory: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("web:request_form"), VALID)
    assert response.status_code == 403
    assert not Submission.objects.exists()

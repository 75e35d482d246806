"""Dangerous attachments and sender trust, end to end through SMTP and the back office."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from django.test import Client

from guichet.casework.models import (
    Attachment,
    AttachmentStatus,
    Message,
    Request,
    SenderVerification,
)
from guichet.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

PE_HEADER = b"MZ" + b"\x90" * 58 + b"\x80\x00\x00\x00" + b"\x00" * 64 + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200


def _send(server: tuple[str, int], msg: EmailMessage) -> None:
    with smtplib.SMTP(*server, timeout=10) as client:
        client.send_message(msg)


def _mail(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "claire.dupont@example.org", "contact@guichet.localhost", "Chauffage du lycée"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Le chauffage du lycée Ampère est en panne, voici la facture et le devis.")
    return msg


def test_executable_disguised_as_pdf_is_blocked_and_the_pdf_is_not(intake_smtp: tuple[str, int], drain: Callable[[], int], agent_alice: Any) -> None:
    msg = _mail()
    msg.add_attachment(PE_HEADER, maintype="application", subtype="pdf", filename="facture.pdf")
    msg.add_attachment(b"%PDF-1.4\n%devis\n", maintype="application", subtype="pdf", filename="devis.pdf")
    _send(intake_smtp, msg)
    drain()

    request = Request.objects.get()
    blocked = Attachment.objects.get(filename="facture.pdf")
    fine = Attachment.objects.get(filename="devis.pdf")
    assert blocked.status == AttachmentStatus.QUARANTINED and blocked.content_type != "application/pdf"
    assert blocked.scan_result
    assert fine.status == AttachmentStatus.CLEAN and fine.content_type == "application/pdf"

    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    response = client.get(f"/agent/demandes/{request.tracking_number}/pieces/{blocked.pk}/")
    assert response.status_code == 403 and PE_HEADER not in response.content and b"bloqu" in response.content
    assert client.get(f"/agent/demandes/{request.tracking_number}/pieces/{fine.pk}/").content.startswith(b"%PDF")
    page = client.get(f"/agent/demandes/{request.tracking_number}/").content.decode()
    assert "Bloquée" in page


def test_trusted_mta_verdict_is_recorded_and_an_unverified_sender_is_flagged(intake_smtp: tuple[str, int], drain: Callable[[], int], agent_alice: Any, settings: Any) -> None:
    settings.GUICHET_TRUSTED_AUTHSERV_IDS = ["mx.region.localhost"]
    _send(intake_smtp, _mail(Authentication_Results="mx.region.localhost; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org; dmarc=pass header.from=example.org"))
    forged = _mail(Authentication_Results="evil.example.net; dmarc=pass header.from=example.org")
    forged.replace_header("Subject", "Car scolaire")
    _send(intake_smtp, forged)
    drain()

    verified, unverified = Message.objects.filter(kind=Message.Kind.CITIZEN).order_by("pk")
    assert verified.sender_verification == SenderVerification.VERIFIED and "DMARC" in verified.authentication_results
    assert unverified.sender_verification == SenderVerification.UNVERIFIED

    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    page = client.get(f"/agent/demandes/{verified.request.tracking_number}/").content.decode()
    assert "expéditeur non vérifié" not in page

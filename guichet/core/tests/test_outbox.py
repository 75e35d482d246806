"""An SMTP outage delays mail, never loses it: tested against a real SMTP server that refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from guichet.core.models import OutgoingMail
from guichet.core.outbox import outbox_deliver, outbox_enqueue, outbox_flush

pytestmark = pytest.mark.django_db


def _queued() -> OutgoingMail:
    return outbox_enqueue(kind=OutgoingMail.Kind.NOTICE, to_address="claire.dupont@example.org", subject="Essai", body_text="Bonjour")


def test_outage_reschedules_then_delivers_once(smtp_sink: Any) -> None:
    mail = _queued()
    smtp_sink.fail = True
    assert outbox_deliver(mail_id=mail.pk) is False
    mail.refresh_from_db()
    assert mail.status == OutgoingMail.Status.QUEUED and mail.attempts == 1
    assert "451" in mail.last_error and mail.next_attempt_at > timezone.now()

    # nothing is due yet, so a flush sends nothing
    smtp_sink.fail = False
    assert outbox_flush() == 0
    OutgoingMail.objects.filter(pk=mail.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert outbox_flush() == 1
    mail.refresh_from_db()
    assert mail.status == OutgoingMail.Status.SENT
    assert [m["Message-ID"] for m in smtp_sink.messages] == [f"<{mail.message_id}>"]
    # delivering again does not send twice
    assert outbox_deliver(mail_id=mail.pk) is False
    assert len(smtp_sink.messages) == 1


def test_gives_up_after_the_configured_attempts(smtp_sink: Any, settings: Any) -> None:
    settings.GUICHET_OUTBOX_MAX_ATTEMPTS = 2
    smtp_sink.fail = True
    mail = _queued()
    outbox_deliver(mail_id=mail.pk)
    OutgoingMail.objects.filter(pk=mail.pk).update(next_attempt_at=timezone.now())
    outbox_deliver(mail_id=mail.pk)
    mail.refresh_from_db()
    assert mail.status == OutgoingMail.Status.FAILED and mail.attempts == 2


def test_unreachable_server_is_an_outage_too(settings: Any) -> None:
    from guichet.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    mail = _queued()
    assert outbox_deliver(mail_id=mail.pk) is False
    mail.refresh_from_db()
    assert mail.status == OutgoingMail.Status.QUEUED and "ConnectionRefused" in mail.last_error

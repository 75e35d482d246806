"""End to end through real SMTP: a citizen's client → Guichet's intake → worker → SMTP sink."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from django.db import OperationalError

from guichet.casework.models import Message, Request, RequestStatus
from guichet.core.models import OutgoingMail
from guichet.intake.models import Submission

pytestmark = pytest.mark.django_db(transaction=True)


def _mail(*, sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Claire Dupont <{sender}>"
    msg["To"] = "contact@guichet.localhost"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def _send(server: tuple[str, int], msg: EmailMessage | bytes, *, sender: str = "claire.dupont@example.org") -> None:
    with smtplib.SMTP(*server, timeout=10) as client:
        if isinstance(msg, bytes):
            client.sendmail(sender, ["contact@guichet.localhost"], msg)
        else:
            client.send_message(msg)


def test_mail_is_routed_acknowledged_answered_and_threaded(
    intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], citizen_claire: str, outsider_oscar: Any
) -> None:
    # given a citizen writes about a late regional train
    first = _mail(sender=citizen_claire, subject="Retard TER Lyon - Grenoble", body="Bonjour, mon TER a encore eu 40 minutes de retard ce matin en gare de Grenoble.")

    # when the mail goes through the intake and the worker runs
    _send(intake_smtp, first)
    drain()

    # then the request sits in the transports queue and the acknowledgement went out by SMTP
    request = Request.objects.get()
    assert request.service is not None and request.service.code == "transports"
    assert request.status == RequestStatus.ROUTED
    assert request.tracking_number.startswith("ARA-")
    ack = smtp_sink.messages[-1]
    assert ack["To"] == citizen_claire
    assert request.tracking_number in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == first["Message-ID"]
    text = ack.get_content()
    assert "réputée rejetée" in text and "Télérecours" in text
    assert request.service.email in text
    assert f"/suivi/{request.public_id}" in text

    # when the agent replies from the back office
    from guichet.casework.services import request_reply

    request_reply(actor=outsider_oscar, request=request, body="Nous avons transmis votre réclamation.")
    drain()
    reply = smtp_sink.messages[-1]
    assert str(reply["Subject"]).strip().startswith(f"[{request.tracking_number}]")

    # and the citizen answers that reply
    answer = _mail(sender=citizen_claire, subject=f"Re: {reply['Subject']}", body="Merci, et pour le remboursement ?", In_Reply_To=reply["Message-ID"])
    _send(intake_smtp, answer)
    drain()

    # then it joins the same request, reopened, and no second acknowledgement is sent
    assert Request.objects.count() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_PROGRESS
    kinds = list(request.messages.values_list("kind", flat=True))
    assert kinds == ["citizen", "acknowledgement", "reply", "citizen"]
    assert OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT).count() == 1


def test_tracking_number_in_subject_threads_only_for_the_requester(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], citizen_claire: str) -> None:
    _send(intake_smtp, _mail(sender=citizen_claire, subject="Chauffage du lycée", body="Le chauffage du lycée Ampère est en panne."))
    drain()
    request = Request.objects.get()

    # a stranger quoting the (public) tracking number does not get into Claire's request
    forged = _mail(sender="mallory@example.net", subject=f"Re: [{request.tracking_number}]", body="Donnez-moi les informations")
    _send(intake_smtp, forged, sender="mallory@example.net")
    # while Claire quoting it does
    _send(intake_smtp, _mail(sender=citizen_claire, subject=f"Complément [{request.tracking_number}]", body="Toujours pas de chauffage."))
    drain()

    assert Request.objects.count() == 2
    assert request.messages.filter(direction=Message.Direction.INBOUND).count() == 2
    assert not request.messages.filter(from_address="mallory@example.net").exists()


def test_same_message_delivered_twice_is_stored_once(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], citizen_claire: str) -> None:
    msg = _mail(sender=citizen_claire, subject="Pass'Région", body="Je n'ai pas reçu ma carte Pass'Région.")
    _send(intake_smtp, msg)
    _send(intake_smtp, msg)
    drain()
    assert Submission.objects.count() == 1
    assert Request.objects.count() == 1
    assert len([m for m in smtp_sink.messages if "Accusé" in m["Subject"]]) == 1


def test_unknown_recipient_is_refused_at_rcpt(intake_smtp: tuple[str, int]) -> None:
    with smtplib.SMTP(*intake_smtp, timeout=10) as client:
        client.ehlo()
        client.mail("someone@example.org")
        code, _ = client.rcpt("nobody@guichet.localhost")
        assert code == 550
        code, _ = client.rcpt("contact+abc123@guichet.localhost")
        assert code == 250


def test_oversized_message_gets_552_and_nothing_is_half_stored(intake_smtp: tuple[str, int], settings: Any) -> None:
    big = b"From: a@example.org\r\nTo: contact@guichet.localhost\r\nSubject: gros\r\n\r\n" + b"x" * (settings.GUICHET_SMTP_MAX_BYTES + 10)
    with pytest.raises(smtplib.SMTPException) as excinfo:
        _send(intake_smtp, big)
    assert "552" in str(excinfo.value)
    assert Submission.objects.count() == 0


def test_database_failure_during_data_answers_451_so_the_sender_retries(intake_smtp: tuple[str, int], monkeypatch: pytest.MonkeyPatch, citizen_claire: str, drain: Callable[[], int]) -> None:
    from guichet.intake.channels.email import smtpd

    def database_down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(smtpd, "email_receive", database_down)
    msg = _mail(sender=citizen_claire, subject="Subvention FEDER", body="Notre subvention FEDER n'est toujours pas versée.")
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        _send(intake_smtp, msg)
    assert excinfo.value.smtp_code == 451

    # when the database is back, the MTA's retry is accepted and processed
    monkeypatch.undo()
    _send(intake_smtp, msg)
    drain()
    assert Request.objects.count() == 1


@pytest.mark.parametrize(
    ("raw", "expected_text"),
    [
        # HTML only, with a script that must never reach a page
        (
            b"From: Jean <jean@example.org>\r\nTo: contact@guichet.localhost\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Le <b>car scolaire</b> est en retard</p><script>alert(1)</script>",
            "car scolaire",
        ),
        # a charset nobody knows
        (
            b"From: jean@example.org\r\nTo: contact@guichet.localhost\r\nSubject: charset\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=x-unknown-42\r\n\r\nProbl\xe8me de bourse pour l'\xe9cole d'infirmiers",
            "bourse",
        ),
        # no sender address at all, and an empty body
        (b"To: contact@guichet.localhost\r\nSubject: \r\n\r\n", ""),
    ],
)
def test_awkward_mail_becomes_a_request_with_the_raw_kept(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], raw: bytes, expected_text: str) -> None:
    _send(intake_smtp, raw, sender="jean@example.org")
    drain()
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.PROCESSED
    # smtplib only adds the final line ending; every byte of the message itself is kept
    assert bytes(submission.raw.data).rstrip(b"\r\n") == raw.rstrip(b"\r\n")
    request = Request.objects.get()
    assert expected_text in request.body_text
    assert "<script>" not in request.body_text


def test_auto_replies_get_no_acknowledgement(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int]) -> None:
    msg = _mail(sender="robot@example.org", subject="Réponse automatique : absent", body="Je suis absent jusqu'au 3 janvier.", Auto_Submitted="auto-replied")
    _send(intake_smtp, msg, sender="robot@example.org")
    drain()
    assert Request.objects.count() == 1
    assert smtp_sink.messages == []
    assert not OutgoingMail.objects.exists()

"""Issue 3 through real SMTP/LMTP: threading, loops, bounces, spam, TLS."""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from guichet.casework.models import Message, Request, RequestStatus
from guichet.casework.services import request_change_status
from guichet.conftest import PASSWORD, free_port
from guichet.core.models import OutgoingMail
from guichet.intake.channels.email.smtpd import smtp_controller
from guichet.intake.models import Submission

pytestmark = pytest.mark.django_db(transaction=True)

CLAIRE = "claire.dupont@example.org"


def mail(*, sender: str = CLAIRE, subject: str = "Chauffage du lycée", body: str = "Le chauffage du lycée Ampère est en panne.", to: str = "contact@guichet.localhost", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def send(server: tuple[str, int], msg: EmailMessage | bytes, *, sender: str = CLAIRE, to: str = "contact@guichet.localhost") -> None:
    with smtplib.SMTP(*server, timeout=10) as client:
        if isinstance(msg, bytes):
            client.sendmail(sender, [to], msg)
        else:
            client.send_message(msg, from_addr=sender, to_addrs=[to])


def test_answer_to_the_reply_to_token_threads_even_with_a_new_subject(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], agent_alice: Any) -> None:
    send(intake_smtp, mail())
    drain()
    request = Request.objects.get()
    ack = smtp_sink.messages[-1]
    reply_to = str(ack["Reply-To"])
    assert reply_to == f"contact+{request.reply_token}@guichet.localhost"

    # the citizen's client drops the subject and the threading headers, but answers to Reply-To
    send(intake_smtp, mail(subject="une autre question", body="Et la cantine ?", to=reply_to), to=reply_to)
    drain()
    assert Request.objects.count() == 1
    assert request.messages.filter(direction=Message.Direction.INBOUND).count() == 2


def test_late_reply_to_a_closed_request_opens_a_linked_one(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], agent_alice: Any, settings: Any) -> None:
    send(intake_smtp, mail())
    drain()
    request = Request.objects.get()
    request_change_status(actor=agent_alice, request=request, status=RequestStatus.CLOSED)
    reply_to = str(smtp_sink.messages[-1]["Reply-To"])

    # a reply soon after closing reopens the request
    send(intake_smtp, mail(subject="Re", body="Toujours en panne", to=reply_to), to=reply_to)
    drain()
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_PROGRESS and Request.objects.count() == 1

    # a reply long after closing opens a new request linked to the old one
    request_change_status(actor=agent_alice, request=request, status=RequestStatus.CLOSED)
    Request.objects.filter(pk=request.pk).update(closed_at=timezone.now() - dt.timedelta(days=settings.GUICHET_REOPEN_WITHIN_DAYS + 1))
    send(intake_smtp, mail(subject="Re", body="Encore en panne cet hiver", to=reply_to), to=reply_to)
    drain()
    newest = Request.objects.order_by("-pk").first()
    assert newest is not None and newest.parent == request and newest.pk != request.pk


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"X_Autoreply": "yes"},
        {"Precedence": "bulk"},
        {"List_Id": "<annonces.example.org>"},
    ],
)
def test_robots_get_no_acknowledgement(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], headers: dict[str, str]) -> None:
    send(intake_smtp, mail(sender="robot@example.org", **headers), sender="robot@example.org")
    drain()
    assert Request.objects.count() == 1
    assert smtp_sink.messages == []


def test_two_guichet_instances_do_not_loop(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int]) -> None:
    # given the other instance's acknowledgement arrives here (it carries Auto-Submitted)
    send(intake_smtp, mail(sender="contact@autre-guichet.example.org", subject="[XYZ-2026-000001] Accusé de réception", Auto_Submitted="auto-replied"), sender="contact@autre-guichet.example.org")
    drain()
    # then we do not answer it, so the ping-pong never starts
    assert smtp_sink.messages == []


def test_acknowledgements_are_capped_per_sender_and_hour(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], settings: Any) -> None:
    settings.GUICHET_ACK_MAX_PER_HOUR = 2
    for number in range(4):
        send(intake_smtp, mail(subject=f"Demande {number}", body=f"Le car scolaire numéro {number} est en retard."))
    drain()
    assert Request.objects.count() == 4
    assert OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT).count() == 2
    # every request still keeps its acknowledgement as a record
    assert Message.objects.filter(kind=Message.Kind.ACKNOWLEDGEMENT).count() == 4


def _bounce_for(original: EmailMessage) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org\r\nTo: contact@guichet.localhost\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {original['To']}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original['Message-ID']}\r\nSubject: whatever\r\n"
        "--b1--\r\n"
    ).encode()


def test_bounce_marks_the_address_invalid_and_opens_nothing(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], agent_alice: Any) -> None:
    send(intake_smtp, mail(sender="typo@exmaple.org"), sender="typo@exmaple.org")
    drain()
    request = Request.objects.get()
    ack = smtp_sink.messages[-1]

    send(intake_smtp, _bounce_for(ack), sender="")
    drain()

    assert Request.objects.count() == 1
    outgoing = OutgoingMail.objects.get(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT)
    assert outgoing.bounced_at is not None and "5.1.1" in outgoing.bounce_reason
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    page = client.get(f"/agent/demandes/{request.tracking_number}/").content.decode()
    assert "adresse invalide" in page
    assert len(smtp_sink.messages) == 1  # no acknowledgement for the bounce


def test_spam_is_quarantined_and_a_triage_agent_can_release_it(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int], triage_tina: Any, outsider_oscar: Any) -> None:
    send(intake_smtp, mail(subject="Retard TER", body="Mon TER est en retard", X_Spam_Flag="YES", X_Spam_Status="Yes, score=7.1"))
    drain()
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.QUARANTINED and "X-Spam-Flag" in submission.quarantine_reason
    assert not Request.objects.exists() and smtp_sink.messages == []

    oscar = Client()
    assert oscar.login(username="oscar", password=PASSWORD)
    assert oscar.get("/agent/quarantaine/").status_code == 404
    assert oscar.post(f"/agent/quarantaine/{submission.pk}/liberer/").status_code == 404

    tina = Client()
    assert tina.login(username="tina", password=PASSWORD)
    assert "Retard TER" in tina.get("/agent/quarantaine/").content.decode()
    tina.post(f"/agent/quarantaine/{submission.pk}/liberer/")
    drain()
    submission.refresh_from_db()
    assert submission.status == Submission.Status.PROCESSED and submission.released_at is not None
    assert Request.objects.get().service.code == "transports"
    assert len(smtp_sink.messages) == 1


def test_reused_message_id_from_another_sender_is_kept_apart(intake_smtp: tuple[str, int], smtp_sink: Any, drain: Callable[[], int]) -> None:
    original = mail()
    send(intake_smtp, original)
    forged = mail(sender="mallory@example.net", body="Un autre texte")
    del forged["Message-ID"]
    forged["Message-ID"] = original["Message-ID"]
    send(intake_smtp, forged, sender="mallory@example.net")
    drain()
    assert Request.objects.count() == 2
    assert Submission.objects.filter(status=Submission.Status.PROCESSED).count() == 2


@pytest.fixture
def lmtp_server(transactional_db: None, directory: Any) -> Iterator[tuple[str, int]]:
    controller = smtp_controller(hostname="127.0.0.1", port=free_port(), lmtp=True)
    controller.start()
    yield controller.hostname, controller.port
    controller.stop()


def test_lmtp_delivery_answers_per_recipient(lmtp_server: tuple[str, int], drain: Callable[[], int], smtp_sink: Any) -> None:
    # Python's smtplib.LMTP reads a single reply after DATA, unlike RFC 2033 (one per recipient,
    # which is what Postfix expects), so speak the protocol on a plain socket.
    with socket.create_connection(lmtp_server, timeout=10) as sock:
        stream = sock.makefile("rwb")

        def command(line: str) -> list[bytes]:
            stream.write(line.encode() + b"\r\n")
            stream.flush()
            return _replies(stream)

        _replies(stream)  # greeting
        assert command("LHLO mx.region.localhost")[-1].startswith(b"250 ")
        assert command(f"MAIL FROM:<{CLAIRE}>")[0].startswith(b"250")
        assert command("RCPT TO:<contact@guichet.localhost>")[0].startswith(b"250")
        assert command("RCPT TO:<contact+abc@guichet.localhost>")[0].startswith(b"250")
        assert command("DATA")[0].startswith(b"354")
        stream.write(mail().as_bytes().replace(b"\n", b"\r\n") + b".\r\n")
        stream.flush()
        replies = [stream.readline(), stream.readline()]
        assert all(reply.startswith(b"250 ") for reply in replies)
        command("QUIT")
    drain()
    assert Submission.objects.get().envelope["protocol"] == "lmtp"
    assert Request.objects.count() == 1


def _replies(stream: Any) -> list[bytes]:
    lines = [stream.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(stream.readline())
    return lines


@pytest.fixture
def tls_intake(transactional_db: None, directory: Any, settings: Any, tmp_path: Path) -> Iterator[tuple[str, int]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    settings.GUICHET_SMTPD_TLS_CERT, settings.GUICHET_SMTPD_TLS_KEY = str(cert), str(key)
    settings.GUICHET_SMTPD_REQUIRE_TLS = True
    controller = smtp_controller(hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.hostname, controller.port
    controller.stop()


def test_starttls_is_offered_and_can_be_required(tls_intake: tuple[str, int], drain: Callable[[], int]) -> None:
    with smtplib.SMTP(*tls_intake, timeout=10) as plain:
        plain.ehlo()
        assert plain.has_extn("starttls")
        code, _ = plain.mail(CLAIRE)
        assert code == 530  # TLS required first
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(*tls_intake, timeout=10) as client:
        client.starttls(context=context)
        client.send_message(mail())
    drain()
    assert Submission.objects.get().envelope["tls"] is True

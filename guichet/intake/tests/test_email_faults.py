"""Hostile and broken mail, and crashes: no crash, nothing lost, nothing duplicated."""

from __future__ import annotations

import datetime as dt
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from guichet.casework.inbound import submission_process
from guichet.casework.models import Attachment, Request
from guichet.casework.sweeps import submissions_retry_due
from guichet.core.models import OutgoingMail
from guichet.core.worker import GuichetWorker
from guichet.intake.channels.email.receive import email_receive
from guichet.intake.models import Submission

FIXTURES = Path(__file__).parent / "fixtures" / "eml"
HEAD = b"From: Claire <claire.dupont@example.org>\r\nTo: contact@guichet.localhost\r\n"


def send_raw(server: tuple[str, int], raw: bytes) -> None:
    with smtplib.SMTP(*server, timeout=30) as client:
        client.sendmail("claire.dupont@example.org", ["contact@guichet.localhost"], raw)


BROKEN = {
    "truncated_mime": HEAD + b'Subject: tronque\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nLe car scolaire est en retard\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK',
    "missing_boundary": HEAD + b"Subject: sans delimiteur\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n--abc\r\nContent-Type: text/plain\r\n\r\nBonjour le lycee\r\n--abc--\r\n",
    "nul_bytes": HEAD + b"Subject: nul\r\n\r\nBonjour\x00 le \x00lycee\r\n",
    "invalid_utf8_headers": HEAD + b"Subject: \xff\xfe caf\xe9 \xc3\r\n\r\nCorps lisible\r\n",
    "header_line_1mb": HEAD + b"Subject: long\r\nX-Long: " + b"a" * (1024 * 1024) + b"\r\n\r\nCorps\r\n",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_mail_is_stored_whole_and_becomes_a_request(name: str, intake_smtp: tuple[str, int], drain: Callable[[], int]) -> None:
    raw = BROKEN[name]
    send_raw(intake_smtp, raw)
    drain()
    submission = Submission.objects.get()
    assert bytes(submission.raw.data).rstrip(b"\r\n") == raw.rstrip(b"\r\n")
    assert submission.status == Submission.Status.PROCESSED
    request = Request.objects.get()
    assert "\x00" not in request.body_text


@pytest.mark.django_db(transaction=True)
def test_two_thousand_attachments_are_capped_with_the_raw_kept(intake_smtp: tuple[str, int], drain: Callable[[], int]) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "claire.dupont@example.org", "contact@guichet.localhost", "pieces"
    msg.set_content("Voici les pièces pour la subvention FEDER.")
    for index in range(2000):
        msg.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf", filename=f"p{index}.pdf")
    send_raw(intake_smtp, msg.as_bytes())
    drain()
    request = Request.objects.get()
    assert Attachment.objects.filter(message__request=request).count() == settings.GUICHET_MAX_MAIL_ATTACHMENTS
    assert b"p1999.pdf" in bytes(Submission.objects.get().raw.data)


@pytest.mark.django_db(transaction=True)
def test_a_100_mb_message_is_refused_with_552_and_stores_nothing(intake_smtp: tuple[str, int]) -> None:
    raw = HEAD + b"Subject: enorme\r\n\r\n" + (b"x" * 998 + b"\r\n") * (100 * 1024)
    with pytest.raises(smtplib.SMTPException) as excinfo:
        send_raw(intake_smtp, raw)
    assert "552" in str(excinfo.value)
    assert not Submission.objects.exists()


def _fixture_messages() -> list[bytes]:
    return [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))][:8]


@pytest.mark.django_db
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_messages_are_always_stored_and_processed(directory: Any, data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(_fixture_messages()))
    position = data.draw(st.integers(min_value=0, max_value=len(original)))
    operation = data.draw(st.sampled_from(["truncate", "insert", "flip"]))
    noise = data.draw(st.binary(min_size=1, max_size=64))
    if operation == "truncate":
        raw = original[:position]
    elif operation == "insert":
        raw = original[:position] + noise + original[position:]
    else:
        raw = original[:position] + bytes(b ^ 0xFF for b in noise) + original[position + len(noise):]
    submission, _ = email_receive(raw=raw, envelope={"mail_from": None, "protocol": "test"})
    assert bytes(submission.raw.data) == raw
    submission_process(submission_id=submission.pk)
    submission.refresh_from_db()
    assert submission.status in {Submission.Status.PROCESSED, Submission.Status.QUARANTINED}, submission.last_error


def _worker_env() -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "guichet.test_settings", "GUICHET_VAR_DIR": str(settings.VAR_DIR)}
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["GUICHET_SQLITE_PATH"] = str(name)
    else:
        db = connection.settings_dict
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"
    return env


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_processing_loses_and_duplicates_nothing(directory: Any) -> None:
    # given a burst of mail waiting for the worker
    count = 40
    for index in range(count):
        raw = f"From: parent{index}@example.org\r\nTo: contact@guichet.localhost\r\nSubject: Car scolaire {index}\r\nMessage-ID: <burst{index}@example.org>\r\n\r\nLe car scolaire {index} est en retard.\r\n".encode()
        email_receive(raw=raw, envelope={"mail_from": "claire.dupont@example.org", "protocol": "test"})
    connection.close()

    # when a real worker process is killed with SIGKILL while it works through them
    worker = subprocess.Popen([sys.executable, "-m", "guichet.manage", "worker", "--interval", "0.05"], env=_worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while Submission.objects.filter(status=Submission.Status.PROCESSED).count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    processed_at_kill = Submission.objects.filter(status=Submission.Status.PROCESSED).count()

    # then a new worker's sweep finishes the job exactly once
    GuichetWorker(interval=0).drain()
    submissions_retry_due(older_than=dt.timedelta(0))
    GuichetWorker(interval=0).drain()
    assert 0 < processed_at_kill
    assert Submission.objects.filter(status=Submission.Status.PROCESSED).count() == count
    assert Request.objects.count() == count
    assert OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT).count() == count

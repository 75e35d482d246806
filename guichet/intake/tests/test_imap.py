"""IMAP intake against a real dovecot: fetch, commit, then move; IDLE; restarts; the command."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import OperationalError, connection

from guichet.casework.models import Request
from guichet.conftest import free_port
from guichet.core.blobs import blob_bytes
from guichet.intake.channels.email import imap
from guichet.intake.channels.email.imap import (
    ImapConfig,
    imap_config_from_settings,
    imap_poll_once,
    imap_run,
    imap_utf7_decode,
    imap_utf7_encode,
)
from guichet.intake.models import Submission
from guichet.intake.tests.dovecot import PASSWORD, USER, Dovecot, dovecot_available

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not dovecot_available(), reason="needs dovecot-imapd and root (see TESTING-NOTES)"),
]

PROCESSED = "Guichet/Traité"
# dovecot's maildir layout uses "." as hierarchy separator; the name is modified UTF-7.
PROCESSED_ON_SERVER = "Guichet.Trait&AOk-"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(free_port())
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def _config(server: Dovecot, **overrides: Any) -> ImapConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "user": USER,
        "password": PASSWORD,
        "ssl": False,
        "starttls": False,
        "processed_folder": PROCESSED,
        "poll_seconds": 60,
        "idle_seconds": 60,
        "timeout": 5,
        "backoff_max": 0.5,
    }
    values.update(overrides)
    return ImapConfig(**values)


def _mail(subject: str, body: str, sender: str = "claire.dupont@example.org") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Claire Dupont <{sender}>"
    msg["To"] = USER
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(body)
    return msg.as_bytes(policy=policy.SMTP)


def _wait_for(condition: Callable[[], bool], *, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in message for message in self.messages)


@pytest.fixture
def imap_log() -> Iterator[_Records]:
    logger = logging.getLogger(imap.__name__)
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_folder_names_use_modified_utf7() -> None:
    assert imap_utf7_encode("Guichet/Traité") == "Guichet/Trait&AOk-"
    assert imap_utf7_encode("R&D") == "R&-D"
    for name in ["Guichet/Traité", "R&D", "Été 2025 – à traiter", "日本語", "~peter/mail/台北", ""]:
        assert imap_utf7_decode(imap_utf7_encode(name)) == name


def test_poll_stores_each_message_then_moves_it(dovecot: Dovecot, directory: Any, drain: Callable[[], int]) -> None:
    # given two citizens' mails waiting in the inbox
    first = _mail("Chauffage du lycée", "Le chauffage du lycée Ampère est en panne depuis lundi.")
    second = _mail("Retard TER", "Mon TER Lyon - Grenoble a eu 40 minutes de retard.", sender="marc@example.net")
    dovecot.append(first)
    dovecot.append(second)

    # when Guichet polls the mailbox
    moved = imap_poll_once(config=_config(dovecot))

    # then each is stored once, byte for byte, and moved to the accented processed folder
    assert moved == 2
    submissions = list(Submission.objects.order_by("pk"))
    assert [blob_bytes(s.raw) for s in submissions] == [first, second]
    assert submissions[0].envelope == {"protocol": "imap", "mailbox": USER, "uid": 1, "mail_from": None}
    assert dovecot.messages("INBOX") == []
    assert dovecot.messages(PROCESSED_ON_SERVER) == [first, second]
    assert any(PROCESSED_ON_SERVER.encode() in line for line in dovecot.folders())

    # and polling again finds nothing and stores nothing
    assert imap_poll_once(config=_config(dovecot)) == 0
    assert Submission.objects.count() == 2

    # and the worker turns them into requests
    drain()
    assert Request.objects.count() == 2


def test_same_message_appended_twice_is_stored_once(dovecot: Dovecot) -> None:
    raw = _mail("Pass'Région", "Je n'ai pas reçu ma carte Pass'Région.")
    dovecot.append(raw)
    dovecot.append(raw)

    assert imap_poll_once(config=_config(dovecot)) == 2

    assert Submission.objects.count() == 1
    assert dovecot.messages("INBOX") == []
    assert len(dovecot.messages(PROCESSED_ON_SERVER)) == 2


def test_database_failure_leaves_the_message_in_the_inbox(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the database is down
    raw = _mail("Bourse", "Où en est ma demande de bourse ?")
    dovecot.append(raw)

    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(imap, "email_receive", database_down)

    # when polling, nothing is stored and nothing leaves the inbox
    assert imap_poll_once(config=_config(dovecot)) == 0
    assert Submission.objects.count() == 0
    assert dovecot.messages("INBOX") == [raw]

    # then once the database is back, the next poll imports it
    monkeypatch.undo()
    assert imap_poll_once(config=_config(dovecot)) == 1
    assert [blob_bytes(s.raw) for s in Submission.objects.all()] == [raw]
    assert dovecot.messages("INBOX") == []


def test_a_message_that_fails_to_store_does_not_block_the_others(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    real = imap.email_receive

    def buggy(*, raw: bytes, envelope: dict[str, Any]) -> Any:
        if b"Poison" in raw:
            raise ValueError("a bug triggered by this message")
        return real(raw=raw, envelope=envelope)

    monkeypatch.setattr(imap, "email_receive", buggy)
    poison, good = _mail("Poison", "Ce message déclenche un bogue."), _mail("Lycée", "Une demande ordinaire.")
    dovecot.append(poison)
    dovecot.append(good)

    assert imap_poll_once(config=_config(dovecot)) == 1
    assert dovecot.messages("INBOX") == [poison]
    assert [blob_bytes(s.raw) for s in Submission.objects.all()] == [good]


def test_copy_delete_expunge_when_the_server_lacks_move(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a server without MOVE, and a message a person already flagged for deletion
    real = imap._capabilities
    monkeypatch.setattr(imap, "_capabilities", lambda conn: real(conn) - {"MOVE"})
    raw = _mail("Apprentissage", "Je cherche un centre de formation d'apprentis.")
    dovecot.append(raw)
    flagged = _mail("Supprimé", "Un agent a supprimé ce message dans son client.")
    with dovecot.client() as client:
        client.append('"INBOX"', r"(\Deleted)", None, flagged)

    # when polling with a processed folder of another name
    assert imap_poll_once(config=_config(dovecot, processed_folder="Traités")) == 1

    # then ours is copied and expunged, and UID EXPUNGE left the other one alone
    assert dovecot.messages("Trait&AOk-s") == [raw]
    assert dovecot.messages("INBOX") == [flagged]
    assert Submission.objects.count() == 1


def test_idle_loop_picks_up_new_mail_and_survives_a_server_restart(dovecot: Dovecot, imap_log: _Records) -> None:
    # given Guichet watching the mailbox in IDLE (polling every minute would be too slow here)
    stop = threading.Event()

    def watch() -> None:
        try:
            imap_run(config=_config(dovecot), stop=stop)
        finally:
            connection.close()

    runner = threading.Thread(target=watch, daemon=True)
    runner.start()
    try:
        _wait_for(lambda: imap_log.count("idling") >= 1, what="IDLE")

        # when a mail arrives, it is stored at once
        first = _mail("Cantine", "La cantine du lycée est fermée.")
        dovecot.append(first)
        _wait_for(lambda: Submission.objects.count() == 1, what="first mail")

        # when dovecot restarts on the same port, Guichet reconnects and carries on
        dovecot.stop()
        _wait_for(lambda: imap_log.count("unavailable") >= 1, what="reconnection attempts")
        dovecot.start()
        _wait_for(lambda: imap_log.count("connected") >= 2, what="reconnection")
        second = _mail("Transport scolaire", "Le car scolaire n'est pas passé ce matin.")
        dovecot.append(second)
        _wait_for(lambda: Submission.objects.count() == 2, what="mail after restart")
        assert [blob_bytes(s.raw) for s in Submission.objects.order_by("pk")] == [first, second]
        _wait_for(lambda: dovecot.messages("INBOX") == [], what="inbox emptied")
    finally:
        # then a stop request is honoured promptly, even while idling
        started = time.monotonic()
        stop.set()
        runner.join(5)
    assert not runner.is_alive()
    assert time.monotonic() - started < 2


def _imap_settings(settings: Any, server: Dovecot) -> None:
    settings.GUICHET_IMAP_HOST = "127.0.0.1"
    settings.GUICHET_IMAP_PORT = server.port
    settings.GUICHET_IMAP_USER = USER
    settings.GUICHET_IMAP_PASSWORD = PASSWORD
    settings.GUICHET_IMAP_SSL = False
    settings.GUICHET_IMAP_STARTTLS = False
    settings.GUICHET_IMAP_PROCESSED_FOLDER = PROCESSED


def test_config_comes_from_settings(settings: Any, dovecot: Dovecot) -> None:
    settings.GUICHET_IMAP_HOST = ""
    assert imap_config_from_settings() is None
    _imap_settings(settings, dovecot)
    config = imap_config_from_settings()
    assert config is not None and config.port == dovecot.port and config.folder == "INBOX"
    # fail closed: a password is never sent in clear to a remote server
    settings.GUICHET_IMAP_HOST = "imap.region.example"
    with pytest.raises(ImproperlyConfigured):
        imap_config_from_settings()


def test_command_once(settings: Any, dovecot: Dovecot) -> None:
    _imap_settings(settings, dovecot)
    dovecot.append(_mail("Subvention", "Notre association demande une subvention."))
    out = StringIO()

    call_command("imap_poll", "--once", stdout=out)

    assert "1 message(s) relevé(s)" in out.getvalue()
    assert Submission.objects.count() == 1


def test_command_stops_cleanly_on_sigterm(settings: Any, dovecot: Dovecot) -> None:
    _imap_settings(settings, dovecot)
    dovecot.append(_mail("Lycée", "Inscription au lycée de secteur."))
    previous = signal.getsignal(signal.SIGTERM)

    def terminate_once_imported() -> None:
        _wait_for(lambda: dovecot.messages("INBOX") == [], what="inbox emptied")
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_imported, daemon=True)
    killer.start()
    out = StringIO()
    call_command("imap_poll", stdout=out)
    killer.join(5)

    assert "IMAP arrêté." in out.getvalue()
    assert Submission.objects.count() == 1
    assert signal.getsignal(signal.SIGTERM) is previous

"""`guichet ingest_mail`: archives (.eml, mbox, Maildir) imported once, resumable, never crashing."""

from __future__ import annotations

import mailbox
import os
import signal
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from guichet.casework.models import Request
from guichet.core.blobs import blob_bytes
from guichet.intake.channels.email import mailbox_import
from guichet.intake.models import Submission

pytestmark = pytest.mark.django_db(transaction=True)

TOPICS = [
    ("Chauffage du lycée", "Le chauffage du lycée Ampère est en panne depuis lundi."),
    ("Retard TER", "Mon TER Lyon - Grenoble a eu 40 minutes de retard."),
    ("Bourse", "Où en est ma demande de bourse régionale ?"),
    ("Transport scolaire", "Le car scolaire n'est pas passé ce matin."),
    ("Subvention", "Notre association sollicite une subvention culturelle."),
    ("Apprentissage", "Je cherche un centre de formation d'apprentis."),
]


def _mail(index: int) -> bytes:
    subject, body = TOPICS[index]
    msg = EmailMessage()
    msg["From"] = f"Usager {index} <usager{index}@example.org>"
    msg["To"] = "contact@guichet.localhost"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(body)
    return msg.as_bytes(policy=policy.default)


def _ingest(*paths: Path) -> str:
    out, err = StringIO(), StringIO()
    call_command("ingest_mail", *[str(p) for p in paths], stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def archive(tmp_path: Path) -> dict[str, Any]:
    """An mbox (without extension: detected by content), a Maildir and a folder of .eml files."""
    mails = [_mail(i) for i in range(len(TOPICS))]
    box = mailbox.mbox(tmp_path / "archive")
    box.add(mails[0])
    box.add(mails[1])
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir.add(mails[2])
    seen = mailbox.MaildirMessage(mails[3])
    seen.set_subdir("cur")
    maildir.add(seen)
    eml = tmp_path / "eml"
    (eml / "2024").mkdir(parents=True)
    (eml / "a.eml").write_bytes(mails[4])
    (eml / "2024" / "b.EML").write_bytes(mails[5])
    (eml / "notes.txt").write_text("pas un courriel, ignoré")
    (eml / "garbage.eml").write_bytes(b"\x00\xff\x13 not a mail at all\n" + os.urandom(64))
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(128))
    return {
        "paths": [tmp_path / "archive", tmp_path / "Maildir", eml, tmp_path / "scan.pdf", tmp_path / "absent"],
        "mails": mails,
    }


def test_imports_every_kind_of_archive_once(archive: dict[str, Any], directory: Any, drain: Callable[[], int]) -> None:
    # when the archive is imported
    output = _ingest(*archive["paths"])

    # then every message is stored byte for byte, and the garbage is reported, not fatal
    assert "6 importés, 0 déjà présents, 3 illisibles" in output
    assert "garbage.eml" in output and "scan.pdf" in output and "chemin introuvable" in output
    stored = {blob_bytes(s.raw) for s in Submission.objects.all()}
    assert stored == set(archive["mails"])
    envelope = Submission.objects.order_by("pk").first().envelope  # type: ignore[union-attr]
    assert envelope == {"protocol": "import", "source": str(archive["paths"][0]), "mail_from": None, "position": 0}

    # when it is imported again, nothing new is stored and the command says so
    again = _ingest(*archive["paths"])
    assert "0 importés, 6 déjà présents, 3 illisibles" in again
    assert "Rien de nouveau" in again
    assert Submission.objects.count() == 6

    # and the worker opens one request per message
    drain()
    assert Request.objects.count() == 6


def test_maildir_files_are_stored_exactly_as_on_disk(archive: dict[str, Any]) -> None:
    maildir = archive["paths"][1]
    on_disk = {f.read_bytes() for part in ("cur", "new") for f in (maildir / part).iterdir()}

    _ingest(maildir)

    assert {blob_bytes(s.raw) for s in Submission.objects.all()} == on_disk


def test_ctrl_c_stops_after_the_current_message_and_a_rerun_resumes(archive: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # given the operator presses Ctrl-C while the first message is being stored
    real = mailbox_import.email_receive
    calls: list[int] = []

    def receive_then_interrupt(**kwargs: Any) -> Any:
        calls.append(1)
        result = real(**kwargs)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(mailbox_import, "email_receive", receive_then_interrupt)
    previous = signal.getsignal(signal.SIGINT)

    # when importing
    with pytest.raises(CommandError, match="relancez") as interrupted:
        _ingest(*archive["paths"][:3])

    # then the current message was finished, nothing else started, and Ctrl-C works again
    assert interrupted.value.returncode == 130
    assert Submission.objects.count() == 1 and len(calls) == 1
    assert signal.getsignal(signal.SIGINT) is previous

    # and a re-run imports the rest
    monkeypatch.undo()
    assert "5 importés, 1 déjà présents, 1 illisibles" in _ingest(*archive["paths"][:3])
    assert Submission.objects.count() == 6


def test_database_down_stops_with_a_clear_message(archive: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(mailbox_import, "email_receive", database_down)

    with pytest.raises(CommandError, match="Base de données indisponible"):
        _ingest(*archive["paths"])
    monkeypatch.undo()
    assert Submission.objects.count() == 0

"""Importing a mail archive: .eml files, directories of them, mbox files and Maildirs.

Each message goes through `email_receive`, which is idempotent, so an interrupted import is
resumed by running it again: what is already stored is counted, not duplicated.
"""

from __future__ import annotations

import logging
import mailbox
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from django.db import DatabaseError

from guichet.intake.channels.email.receive import email_receive

logger = logging.getLogger(__name__)

# A mail starts with a header field (RFC 5322 §2.2: printable ASCII name, then a colon).
_FIRST_HEADER = re.compile(rb"^[\x21-\x39\x3b-\x7e]{1,200}:")
_MAILDIR_PARTS = ("cur", "new")


@dataclass(frozen=True)
class MailItem:
    """One message of an archive; `raw` is None when it could not be read as mail."""

    source: str
    raw: bytes | None
    problem: str = ""
    position: int | None = None


class MailSource(Protocol):
    @property
    def path(self) -> Path: ...

    def count(self) -> int: ...

    def items(self) -> Iterator[MailItem]: ...


def _checked(source: str, read: Callable[[], bytes], position: int | None = None) -> MailItem:
    try:
        raw = read()
    except (OSError, mailbox.Error) as exc:
        return MailItem(source, None, f"lecture impossible : {exc}", position)
    if not _FIRST_HEADER.match(raw):
        return MailItem(source, None, "pas un message (aucun en-tête)", position)
    return MailItem(source, raw, position=position)


@dataclass(frozen=True)
class FilesSource:
    """Each file is one message: a single .eml, a directory of .eml files, or a Maildir."""

    path: Path
    files: tuple[Path, ...]

    def count(self) -> int:
        return len(self.files)

    def items(self) -> Iterator[MailItem]:
        for file in self.files:
            yield _checked(str(file), file.read_bytes)


@dataclass(frozen=True)
class MboxSource:
    path: Path

    def count(self) -> int:
        try:
            box = mailbox.mbox(self.path, create=False)
        except (OSError, mailbox.Error):
            return 1
        try:
            return len(box)
        finally:
            box.close()

    def items(self) -> Iterator[MailItem]:
        try:
            box = mailbox.mbox(self.path, create=False)
            keys = list(box.iterkeys())
        except (OSError, mailbox.Error) as exc:
            yield MailItem(str(self.path), None, f"mbox illisible : {exc}")
            return
        try:
            for position, key in enumerate(keys):
                # get_bytes keeps the message as stored, minus the mbox "From " separator line.
                yield _checked(str(self.path), partial(box.get_bytes, key), position)
        finally:
            box.close()


@dataclass(frozen=True)
class UnreadableSource:
    path: Path
    problem: str

    def count(self) -> int:
        return 1

    def items(self) -> Iterator[MailItem]:
        yield MailItem(str(self.path), None, self.problem)


def _is_maildir(path: Path) -> bool:
    return all((path / part).is_dir() for part in _MAILDIR_PARTS)


def _maildir_files(root: Path) -> tuple[Path, ...]:
    # tmp/ holds deliveries in progress; Maildir++ subfolders (".Sent") are mailboxes too.
    folders = [root, *sorted(p for p in root.iterdir() if p.name.startswith(".") and _is_maildir(p))]
    return tuple(
        file for folder in folders for part in _MAILDIR_PARTS for file in sorted((folder / part).iterdir()) if file.is_file()
    )


def _looks_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(5) == b"From "
    except OSError:
        return False


def mail_source_open(path: Path) -> MailSource:
    """What kind of archive `path` is, from its shape and content rather than its name."""
    try:
        if not path.exists():
            return UnreadableSource(path, "chemin introuvable")
        if path.is_dir():
            if _is_maildir(path):
                return FilesSource(path, _maildir_files(path))
            return FilesSource(path, tuple(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".eml")))
        if _looks_like_mbox(path):
            return MboxSource(path)
        return FilesSource(path, (path,))
    except OSError as exc:
        return UnreadableSource(path, f"lecture impossible : {exc}")


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    unreadable: list[MailItem] = field(default_factory=list)
    failed: list[MailItem] = field(default_factory=list)
    interrupted: bool = False
    database_error: str = ""


def _envelope(item: MailItem) -> dict[str, Any]:
    envelope: dict[str, Any] = {"protocol": "import", "source": item.source, "mail_from": None}
    if item.position is not None:
        envelope["position"] = item.position
    return envelope


def mail_import(
    *,
    sources: Iterable[MailSource],
    stop: threading.Event | None = None,
    on_item: Callable[[MailItem], None] | None = None,
) -> ImportReport:
    """Store every message of `sources`; stops between two messages when `stop` is set."""
    report = ImportReport()
    for source in sources:
        for item in source.items():
            if stop is not None and stop.is_set():
                report.interrupted = True
                return report
            if item.raw is None:
                report.unreadable.append(item)
            else:
                try:
                    _, created = email_receive(raw=item.raw, envelope=_envelope(item))
                except DatabaseError as exc:
                    # Every further message would fail too; a re-run resumes where this stopped.
                    report.database_error = str(exc)
                    return report
                except Exception:
                    logger.exception("Import of %s failed", item.source)
                    report.failed.append(item)
                else:
                    report.imported += created
                    report.duplicates += not created
            if on_item is not None:
                on_item(item)
    return report

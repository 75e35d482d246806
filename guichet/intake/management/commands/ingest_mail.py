from __future__ import annotations

import signal
import sys
import threading
from argparse import ArgumentParser
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from guichet.intake.channels.email.mailbox_import import ImportReport, mail_import, mail_source_open

_LISTED_PROBLEMS = 50


class Command(BaseCommand):
    help = "Importe des archives de courriel (.eml, dossiers de .eml, mbox, Maildir) ; relançable sans doublon."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    def handle(self, *args: Any, paths: list[Path], **options: Any) -> None:
        sources = [mail_source_open(path) for path in paths]
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()
            # A second Ctrl-C interrupts at once, for an import stuck on a slow database.
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            # disable=None: a bar on a terminal, nothing in logs and pipes.
            with tqdm(total=sum(s.count() for s in sources), unit="msg", file=sys.stderr, disable=None) as bar:
                report = mail_import(sources=sources, stop=stop, on_item=lambda item: bar.update(1))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._summarise(report)

    def _summarise(self, report: ImportReport) -> None:
        problems = [("Illisible", item, item.problem) for item in report.unreadable]
        problems += [("En erreur", item, "enregistrement impossible, voir le journal") for item in report.failed]
        for label, item, problem in problems[:_LISTED_PROBLEMS]:
            where = item.source if item.position is None else f"{item.source} (message n° {item.position + 1})"
            self.stderr.write(f"{label} : {where} : {problem}")
        if len(problems) > _LISTED_PROBLEMS:
            self.stderr.write(f"… et {len(problems) - _LISTED_PROBLEMS} autre(s).")
        summary = f"{report.imported} importés, {report.duplicates} déjà présents, {len(report.unreadable)} illisibles"
        self.stdout.write(summary + (f", {len(report.failed)} en erreur" if report.failed else ""))
        if report.imported == 0 and report.duplicates:
            self.stdout.write("Rien de nouveau : ces messages étaient déjà importés.")
        if report.database_error:
            raise CommandError(f"Base de données indisponible ({report.database_error}) : relancez la commande, l'import reprendra où il s'est arrêté.")
        if report.interrupted:
            raise CommandError("Import interrompu : relancez la même commande pour reprendre.", returncode=130)

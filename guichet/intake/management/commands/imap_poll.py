from __future__ import annotations

import imaplib
import signal
import threading
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from guichet.intake.channels.email.imap import imap_config_from_settings, imap_poll_once, imap_run


class Command(BaseCommand):
    help = "Relève la boîte IMAP configurée (IDLE si le serveur le permet) et enregistre chaque message."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="Une seule relève, puis sortie.")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        config = imap_config_from_settings()
        if config is None:
            raise CommandError("GUICHET_IMAP_HOST n'est pas configuré : aucune boîte à relever.")
        if once:
            try:
                moved = imap_poll_once(config=config)
            except (OSError, imaplib.IMAP4.error) as exc:
                raise CommandError(f"Relève IMAP impossible : {exc}") from exc
            self.stdout.write(f"{moved} message(s) relevé(s) et rangé(s) dans {config.processed_folder}.")
            return
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"IMAP : relève de {config.user}@{config.host}:{config.port}/{config.folder}")
        try:
            imap_run(config=config, stop=stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("IMAP arrêté.")

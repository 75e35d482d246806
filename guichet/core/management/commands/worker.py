from __future__ import annotations

import signal
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand

from guichet.core.worker import GuichetWorker


class Command(BaseCommand):
    help = "Run the background worker (processing, acknowledgements, outbox retries)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between polls when idle.")
        parser.add_argument("--batch", action="store_true", help="Run what is ready, sweep once, then exit.")

    def handle(self, *args: Any, interval: float, batch: bool, **options: Any) -> None:
        worker = GuichetWorker(interval=interval)
        if batch:
            count = worker.drain(sweep=True)
            self.stdout.write(f"{count} tâche(s) exécutée(s).")
            return

        def _stop(signum: int, frame: FrameType | None) -> None:
            self.stdout.write("Arrêt du worker après la tâche en cours…")
            worker.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        worker.run()

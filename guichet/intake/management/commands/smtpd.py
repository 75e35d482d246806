from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand

from guichet.intake.channels.email.smtpd import smtp_controller


class Command(BaseCommand):
    help = "Run the SMTP intake server for the single address."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--lmtp", action="store_true", help="Speak LMTP (delivery from the Région's MTA) instead of SMTP.")

    def handle(self, *args: Any, host: str | None, port: int | None, lmtp: bool, **options: Any) -> None:
        controller = smtp_controller(hostname=host, port=port, lmtp=lmtp)
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        controller.start()
        self.stdout.write(f"{'LMTP' if lmtp else 'SMTP'} : en écoute sur {controller.hostname}:{controller.port}")
        stop.wait()
        controller.stop()
        self.stdout.write("SMTP arrêté.")

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

    def handle(self, *args: Any, host: str | None, port: int | None, **options: Any) -> None:
        controller = smtp_controller(hostname=host, port=port)
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        controller.start()
        self.stdout.write(f"SMTP : en écoute sur {controller.hostname}:{controller.port}")
        stop.wait()
        controller.stop()
        self.stdout.write("SMTP arrêté.")

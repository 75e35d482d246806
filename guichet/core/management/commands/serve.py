from __future__ import annotations

import threading
from argparse import ArgumentParser
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from guichet.core.worker import GuichetWorker
from guichet.intake.channels.email.imap import imap_config_from_settings, imap_run
from guichet.intake.channels.email.smtpd import smtp_controller


class Command(BaseCommand):
    help = "Run web, SMTP intake and the worker in one process (local use and small sites)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--smtp-port", type=int, default=None)

    def handle(self, *args: Any, host: str, port: int, smtp_port: int | None, **options: Any) -> None:
        controller = smtp_controller(port=smtp_port)
        controller.start()
        worker = GuichetWorker()
        worker_thread = threading.Thread(target=worker.run, name="guichet-worker", daemon=True)
        worker_thread.start()
        imap_config = imap_config_from_settings()
        imap_stop = threading.Event()
        if imap_config is not None:
            threading.Thread(target=imap_run, kwargs={"config": imap_config, "stop": imap_stop}, name="guichet-imap", daemon=True).start()
            self.stdout.write(f"IMAP : relève de {imap_config.user}@{imap_config.host}:{imap_config.port}")
        self.stdout.write(
            f"Guichet : web http://{host}:{port}/  —  SMTP {controller.hostname}:{controller.port} "
            f"({settings.GUICHET_ADDRESS})  —  worker actif.  Ctrl-C pour arrêter."
        )
        server = uvicorn.Server(uvicorn.Config("guichet.asgi:application", host=host, port=port, lifespan="off", log_level="info"))
        try:
            # uvicorn owns SIGINT/SIGTERM in the main thread; when it returns, stop the others.
            server.run()
        except KeyboardInterrupt:
            # uvicorn re-raises the signal it handled once it has shut down: that is our Ctrl-C.
            pass
        finally:
            imap_stop.set()
            worker.stop()
            worker_thread.join(timeout=15)
            controller.stop()
            self.stdout.write("Guichet arrêté.")

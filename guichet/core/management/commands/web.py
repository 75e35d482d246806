from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the web application (ASGI, uvicorn)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1, help="Web processes.")

    def handle(self, *args: Any, host: str, port: int, workers: int, **options: Any) -> None:
        try:
            uvicorn.run("guichet.asgi:application", host=host, port=port, workers=workers, lifespan="off", proxy_headers=True)
        except KeyboardInterrupt:
            # uvicorn re-raises the signal it handled after a clean shutdown.
            pass

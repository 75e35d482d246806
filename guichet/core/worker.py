"""The task worker: django-tasks-db claiming (SKIP LOCKED on PostgreSQL) plus periodic sweeps."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import OperationalError, close_old_connections
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

logger = logging.getLogger(__name__)


class GuichetWorker:
    def __init__(self, *, interval: float = 0.5, queue_names: tuple[str, ...] = ("default",), worker_id: str | None = None) -> None:
        self.interval = interval
        self.queue_names = list(queue_names)
        self.worker_id = worker_id or get_random_string(32)
        self.stopping = threading.Event()
        self._runner = Worker(
            queue_names=self.queue_names,
            interval=interval,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=self.worker_id,
            excluded_queue_names=[],
        )
        self._jobs: list[Callable[[], object]] = [import_string(path) for path in settings.GUICHET_PERIODIC_JOBS]
        self._last_sweep = 0.0

    def run_one(self) -> bool:
        """Claim and run one ready task; False when none is ready."""
        tasks = DBTaskResult.objects.ready().filter(backend_name="default", queue_name__in=self.queue_names)
        try:
            with exclusive_transaction(tasks.db):
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)
        except OperationalError as exc:
            if is_locked_database_exception(exc):
                return False
            raise
        if task_result is None:
            return False
        self._runner.run_task(task_result)
        return True

    def sweep(self) -> None:
        for job in self._jobs:
            try:
                job()
            except Exception:
                logger.exception("Periodic job %s failed", job)

    def drain(self, *, sweep: bool = False) -> int:
        """Run every ready task (and the tasks they enqueue); for tests, benchmarks and --batch."""
        count = 0
        while self.run_one():
            count += 1
        if sweep:
            self.sweep()
            while self.run_one():
                count += 1
        return count

    def run(self) -> None:
        logger.info("Worker %s started on queues %s", self.worker_id, ",".join(self.queue_names))
        while not self.stopping.is_set():
            close_old_connections()
            try:
                ran = self.run_one()
                if time.monotonic() - self._last_sweep >= settings.GUICHET_PERIODIC_SECONDS:
                    self._last_sweep = time.monotonic()
                    self.sweep()
            except Exception:
                # A database outage must not kill the worker: wait and try again.
                logger.exception("Worker loop error; retrying")
                ran = False
                self.stopping.wait(5)
            if not ran:
                self.stopping.wait(self.interval)
        close_old_connections()
        logger.info("Worker %s stopped", self.worker_id)

    def stop(self) -> None:
        self.stopping.set()

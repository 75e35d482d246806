"""Shared fixtures: the personas every test speaks of, a real SMTP sink and the real worker."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import AbstractUser

from guichet.accounts.services import agent_create
from guichet.core.worker import GuichetWorker
from guichet.directory.loading import load_directory
from guichet.directory.models import Authority, Service

PASSWORD = "correct-horse-battery-staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def directory(db: None) -> dict[str, Service | Authority]:
    # Transactional tests flush the tables the data migration filled, so reload them.
    load_directory(Service, Authority)
    entries: dict[str, Service | Authority] = {s.code: s for s in Service.objects.all()}
    entries.update({a.code: a for a in Authority.objects.all()})
    return entries


def _agent(username: str, services: list[Service], **flags: Any) -> AbstractUser:
    return agent_create(actor="tests", username=username, email=f"{username}@region.localhost", password=PASSWORD, services=services, **flags)


@pytest.fixture
def agent_alice(directory: dict[str, Any]) -> AbstractUser:
    return _agent("alice", [directory["lycees"]], first_name="Alice", last_name="Martin")


@pytest.fixture
def agent_bob(directory: dict[str, Any]) -> AbstractUser:
    return _agent("bob", [directory["lycees"]])


@pytest.fixture
def outsider_oscar(directory: dict[str, Any]) -> AbstractUser:
    return _agent("oscar", [directory["transports"]])


@pytest.fixture
def triage_tina(directory: dict[str, Any]) -> AbstractUser:
    return _agent("tina", [], is_triage=True)


@pytest.fixture
def manager_maya(directory: dict[str, Any]) -> AbstractUser:
    return _agent("maya", [directory["lycees"]], is_manager=True)


@pytest.fixture
def citizen_claire() -> str:
    return "claire.dupont@example.org"


@pytest.fixture
def drain() -> Callable[[], int]:
    """Run the real worker until no task is ready (tasks enqueue further tasks)."""

    def _drain() -> int:
        return GuichetWorker(interval=0).drain()

    return _drain


@dataclass
class SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    fail: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail:
            return "451 4.3.0 sink says try later"
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SinkHandler]:
    """A real SMTP server receiving Guichet's outgoing mail."""
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def intake_smtp(transactional_db: None, directory: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """Guichet's own SMTP intake server on a free port."""
    from guichet.intake.channels.email.smtpd import smtp_controller

    controller = smtp_controller(hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.hostname, controller.port
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Rate-limit counters live in the cache; each test starts with none.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()

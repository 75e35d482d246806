"""The embedded SMTP and LMTP intake: `250` only once the message is committed to the database."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from guichet.intake.channels.email.receive import email_receive

logger = logging.getLogger(__name__)

# RFC 5321 caps lines at 1000 octets, but real clients and robots exceed it; refusing their
# mail would lose it, so accept long lines up to the message size limit's order of magnitude.
LONG_LINE_LIMIT = 4 * 1024 * 1024


class GuichetSMTP(SMTP):
    line_length_limit = LONG_LINE_LIMIT


class GuichetLMTP(LMTP):
    line_length_limit = LONG_LINE_LIMIT


def accepts_recipient(address: str, accepted: set[str]) -> bool:
    local, _, domain = address.strip().lower().rpartition("@")
    # contact+token@domain is the reply address of an outgoing mail; it reaches the same box.
    base = local.split("+", 1)[0]
    return f"{local}@{domain}" in accepted or f"{base}@{domain}" in accepted


def _receive(raw: bytes, envelope: dict[str, Any]) -> int:
    close_old_connections()
    submission, _ = email_receive(raw=raw, envelope=envelope)
    return submission.pk


class IntakeHandler:
    def __init__(self, accepted_recipients: list[str], *, protocol: str = "smtp") -> None:
        self.accepted = {address.lower() for address in accepted_recipients}
        self.protocol = protocol

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if not accepts_recipient(address, self.accepted):
            return "550 5.1.1 Destinataire inconnu / unknown recipient"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        meta = {
            "mail_from": envelope.mail_from or "",
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": str(session.peer[0]) if isinstance(session.peer, tuple) else str(session.peer),
            "helo": session.host_name or "",
            "protocol": self.protocol,
            "tls": session.ssl is not None,
        }
        try:
            submission_id = await sync_to_async(_receive, thread_sensitive=False)(raw, meta)
        except DatabaseError:
            logger.exception("Database unavailable: asking the sender to retry")
            return self._reply(envelope, "451 4.3.0 Erreur temporaire, réessayez plus tard / temporary failure")
        except Exception:
            logger.exception("Unexpected failure while storing a message")
            return self._reply(envelope, "451 4.3.0 Erreur temporaire, réessayez plus tard / temporary failure")
        return self._reply(envelope, f"250 2.0.0 Message enregistré / accepted ({submission_id})")

    def _reply(self, envelope: Envelope, status: str) -> str:
        # LMTP answers once per recipient; the message is stored once for all of them.
        if self.protocol == "lmtp":
            return "\r\n".join([status] * max(len(envelope.rcpt_tos), 1))
        return status


class IntakeController(Controller):
    def __init__(self, handler: IntakeHandler, *, lmtp: bool, **kwargs: Any) -> None:
        self.lmtp = lmtp
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        server_class = GuichetLMTP if self.lmtp else GuichetSMTP
        return server_class(self.handler, **self.SMTP_kwargs)


def _tls_context() -> ssl.SSLContext | None:
    cert, key = settings.GUICHET_SMTPD_TLS_CERT, settings.GUICHET_SMTPD_TLS_KEY
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key or None)
    return context


def smtp_controller(*, hostname: str | None = None, port: int | None = None, lmtp: bool = False) -> IntakeController:
    tls_context = _tls_context()
    kwargs: dict[str, Any] = {}
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=settings.GUICHET_SMTPD_REQUIRE_TLS)
    return IntakeController(
        IntakeHandler(settings.GUICHET_ACCEPTED_RECIPIENTS, protocol="lmtp" if lmtp else "smtp"),
        lmtp=lmtp,
        hostname=hostname or settings.GUICHET_SMTP_HOST,
        port=port if port is not None else settings.GUICHET_SMTP_PORT,
        data_size_limit=settings.GUICHET_SMTP_MAX_BYTES,
        decode_data=False,
        enable_SMTPUTF8=True,
        ident="Guichet",
        **kwargs,
    )

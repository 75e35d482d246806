"""Delivery status notifications (RFC 3464): a bounce is news about a mail we sent, not a request."""

from __future__ import annotations

import email
import logging
import re
from dataclasses import dataclass
from email import policy
from email.message import Message

logger = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(r"<([^<>\s]{1,250}@[^<>\s]{1,250})>")
_BOUNCE_SUBJECT = re.compile(r"(undeliver|delivery status notification|returned mail|non remis|non distribu|échec de (la )?remise|mail delivery failed)", re.I)


@dataclass(frozen=True)
class Bounce:
    original_message_ids: tuple[str, ...]
    recipient: str
    action: str
    status: str
    diagnostic: str

    @property
    def is_failure(self) -> bool:
        return self.action.lower() == "failed" or self.status.startswith("5")


def _field(block: Message, name: str) -> str:
    value = str(block.get(name, "") or "")
    # "rfc822; someone@example.org" → "someone@example.org"
    return value.split(";", 1)[-1].strip()


def _delivery_fields(part: Message) -> tuple[str, str, str, str]:
    payload = part.get_payload()
    blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
    for block in blocks[1:] or blocks:
        recipient = _field(block, "Final-Recipient") or _field(block, "Original-Recipient")
        if recipient:
            return recipient, _field(block, "Action"), _field(block, "Status"), _field(block, "Diagnostic-Code")[:300]
    return "", "", "", ""


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")


def _ids_in(text: str) -> list[str]:
    return _MESSAGE_ID.findall(text)


def parse_bounce(raw: bytes, *, envelope_from: str | None) -> Bounce | None:
    """The bounce in this mail, or None if it is not one. Never raises."""
    try:
        message = email.message_from_bytes(raw, policy=policy.compat32)
    except Exception:
        return None
    is_report = message.get_content_type() == "multipart/report"
    null_sender = envelope_from is not None and envelope_from.strip() in {"", "<>"}
    subject = str(message.get("Subject", "") or "")
    if not (is_report or (null_sender and _BOUNCE_SUBJECT.search(subject))):
        return None
    recipient = action = status = diagnostic = ""
    original_ids: list[str] = []
    try:
        for part in message.walk():
            content_type = part.get_content_type()
            if content_type == "message/delivery-status":
                recipient, action, status, diagnostic = _delivery_fields(part)
            elif content_type in {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}:
                body = part.as_string() if content_type == "message/rfc822" else _decoded(part)
                match = re.search(r"^message-id:\s*(<[^>]+>)", body, re.I | re.M)
                if match:
                    original_ids.extend(_ids_in(match.group(1)))
    except Exception:
        # A mangled report still counts as a bounce; the raw text fallback below finds the ids.
        logger.debug("Unreadable delivery report", exc_info=True)
    if not original_ids:
        # Some MTAs quote the original only as text: any of our Message-IDs in it will do.
        original_ids = _ids_in(raw.decode("utf-8", "replace"))
    return Bounce(
        original_message_ids=tuple(dict.fromkeys(original_ids)),
        recipient=recipient.lower(),
        action=action or ("failed" if null_sender else ""),
        status=status,
        diagnostic=diagnostic,
    )


_SPAM_STATUS = re.compile(r"^\s*yes\b", re.I)


def spam_verdict(headers: tuple[tuple[str, str], ...]) -> str | None:
    """Why the receiving MTA flagged this mail as spam, or None (we trust our MTA's filter)."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == "x-spam-flag" and value.strip().lower() == "yes":
            return "Signalé comme indésirable par le serveur de messagerie (X-Spam-Flag)."
        if lowered == "x-spam-status" and _SPAM_STATUS.match(value):
            return f"Signalé comme indésirable par le serveur de messagerie (X-Spam-Status : {value[:120]})."
    return None

"""From raw mail bytes to a stored submission: shared by SMTP, and later IMAP and file imports."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from guichet.intake.inbound import InboundMessage
from guichet.intake.models import Channel, Submission
from guichet.intake.services import submission_receive

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*<?([^\r\n>]{1,250})>?", re.I | re.M)


def email_idempotency_key(raw: bytes) -> str:
    """Same Message-ID and same content → same key, whatever Received headers an MTA added."""
    head, _, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
    body_digest = hashlib.sha256(body).hexdigest()[:32]
    match = _MESSAGE_ID.search(head)
    if match:
        message_id = match.group(1).strip().decode("ascii", "replace")
        return f"mid:{message_id}:{body_digest}"[:255]
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def email_receive(*, raw: bytes, envelope: dict[str, Any]) -> tuple[Submission, bool]:
    return submission_receive(
        inbound=InboundMessage(channel=Channel.EMAIL, idempotency_key=email_idempotency_key(raw), raw=raw, envelope=envelope)
    )

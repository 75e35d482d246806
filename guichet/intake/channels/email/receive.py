"""From raw mail bytes to a stored submission: shared by SMTP, and later IMAP and file imports."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from guichet.intake.inbound import InboundMessage
from guichet.intake.models import Channel, Submission
from guichet.intake.services import submission_receive

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*<?([^\r\n>]{1,250})>?", re.I | re.M)
# Headers that relays add or rewrite on the way: a redelivered message differs only in these.
_TRACE_HEADERS = (
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"envelope-to",
    b"authentication-results", b"arc-", b"x-spam", b"x-virus", b"dkim-signature",
)


def _without_trace_headers(raw: bytes) -> bytes:
    separator = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    head, found, body = raw.partition(separator)
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(_TRACE_HEADERS)
        if not dropping:
            kept.append(line)
    return b"".join(kept) + found + body


def email_idempotency_key(raw: bytes) -> str:
    """Same Message-ID and same content → same key, whatever trace headers relays added.

    Any other difference, even a byte, gives another key: two different messages are never
    merged, at worst one message is stored twice.
    """
    digest = hashlib.sha256(_without_trace_headers(raw)).hexdigest()
    match = _MESSAGE_ID.search(raw.partition(b"\r\n\r\n")[0] if b"\r\n\r\n" in raw else raw.partition(b"\n\n")[0])
    if match:
        message_id = match.group(1).strip().decode("ascii", "replace")[:150]
        return f"mid:{message_id}:{digest}"
    return f"sha256:{digest}"


def email_receive(*, raw: bytes, envelope: dict[str, Any]) -> tuple[Submission, bool]:
    return submission_receive(
        inbound=InboundMessage(channel=Channel.EMAIL, idempotency_key=email_idempotency_key(raw), raw=raw, envelope=envelope)
    )

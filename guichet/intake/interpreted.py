from __future__ import annotations

from dataclasses import dataclass

from guichet.intake.channels.email.dsn import Bounce


@dataclass(frozen=True)
class SenderInfo:
    name: str = ""
    email: str | None = None
    phone: str = ""
    postal_address: str = ""
    kind: str = "person"
    siret: str = ""


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    declared_type: str
    content: bytes


@dataclass(frozen=True)
class Interpreted:
    """A submission read by its channel adapter: the same shape whatever the channel."""

    sender: SenderInfo
    subject: str
    text: str
    html: str = ""
    attachments: tuple[InboundAttachment, ...] = ()
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    # Robots (auto-replies, bounces, lists) never get an acknowledgement: mail loops.
    is_automated: bool = False
    defects: tuple[str, ...] = ()
    # Addresses the message was delivered to (envelope and headers): carry the reply token.
    recipients: tuple[str, ...] = ()
    spam_reason: str | None = None
    bounce: Bounce | None = None
    sender_verification: str = "unknown"
    authentication_results: str = ""

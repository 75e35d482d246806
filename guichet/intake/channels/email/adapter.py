from __future__ import annotations

from typing import Any

from guichet.intake.channels.email.automation import is_automated
from guichet.intake.channels.email.parsing import parse_email
from guichet.intake.interpreted import InboundAttachment, Interpreted, SenderInfo


def interpret(raw: bytes, envelope: dict[str, Any]) -> Interpreted:
    parsed = parse_email(raw)
    sender_email = parsed.reply_to_address or parsed.from_address
    if sender_email is None:
        mail_from = str(envelope.get("mail_from") or "").strip().lower()
        sender_email = mail_from if "@" in mail_from else None
    return Interpreted(
        sender=SenderInfo(name=parsed.from_name, email=sender_email),
        subject=parsed.subject,
        text=parsed.text,
        html=parsed.html or "",
        attachments=tuple(
            InboundAttachment(filename=a.filename, declared_type=a.content_type, content=a.content)
            for a in parsed.attachments
        ),
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        is_automated=is_automated(parsed.headers, sender_email, envelope.get("mail_from")),
        defects=parsed.defects,
    )

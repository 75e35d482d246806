from __future__ import annotations

from email.utils import getaddresses
from typing import Any

from django.conf import settings

from guichet.intake.channels.email.automation import is_automated
from guichet.intake.channels.email.dsn import parse_bounce, spam_verdict
from guichet.intake.channels.email.parsing import ParsedEmail, parse_email
from guichet.intake.channels.email.trust import TrustVerdict, sender_trust
from guichet.intake.interpreted import InboundAttachment, Interpreted, SenderInfo

_RECIPIENT_HEADERS = {"to", "cc", "delivered-to", "x-original-to", "envelope-to"}


def _recipients(parsed: ParsedEmail, envelope: dict[str, Any]) -> tuple[str, ...]:
    found = [str(address).lower() for address in envelope.get("rcpt_tos") or []]
    values = [value for name, value in parsed.headers if name.lower() in _RECIPIENT_HEADERS]
    found.extend(address.lower() for _, address in getaddresses(values) if "@" in address)
    return tuple(dict.fromkeys(found))


def interpret(raw: bytes, envelope: dict[str, Any]) -> Interpreted:
    parsed = parse_email(raw, max_attachments=settings.GUICHET_MAX_MAIL_ATTACHMENTS)
    sender_email = parsed.reply_to_address or parsed.from_address
    envelope_from = envelope.get("mail_from")
    if sender_email is None and envelope_from and "@" in str(envelope_from):
        sender_email = str(envelope_from).strip().lower()
    bounce = parse_bounce(raw, envelope_from=envelope_from)
    trust = _trust(raw, parsed)
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
        is_automated=bounce is not None or is_automated(parsed.headers, sender_email, envelope_from),
        defects=parsed.defects,
        recipients=_recipients(parsed, envelope),
        spam_reason=spam_verdict(parsed.headers),
        bounce=bounce,
        sender_verification=trust.verification,
        authentication_results=trust.summary,
    )


def _trust(raw: bytes, parsed: ParsedEmail) -> TrustVerdict:
    if not settings.GUICHET_DKIM_VERIFY and not settings.GUICHET_TRUSTED_AUTHSERV_IDS:
        return TrustVerdict(verification="unverified", spf="none", dkim="none", dmarc="none", summary="Vérification désactivée.")
    trusted = frozenset(settings.GUICHET_TRUSTED_AUTHSERV_IDS)
    if not settings.GUICHET_DKIM_VERIFY:
        # Without DNS, only our MTA's verdict counts: strip DKIM-Signature so no lookup happens.
        raw = b"\r\n".join(line for line in raw.split(b"\r\n") if not line.lower().startswith(b"dkim-signature"))
    return sender_trust(raw=raw, headers=parsed.headers, from_address=parsed.from_address, trusted_authserv_ids=trusted)


def preview(raw: bytes, envelope: dict[str, Any]) -> tuple[str, str, str]:
    """Sender, subject and excerpt for a quarantine list: parsing only, no DNS, no scanning."""
    parsed = parse_email(raw, max_attachments=0)
    return parsed.from_address or parsed.from_name or "?", parsed.subject, parsed.text[:300]

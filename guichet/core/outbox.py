"""Outgoing mail: committed to the outbox first, delivered by the worker with retries.

An SMTP outage only delays a mail: a failed attempt is rescheduled with exponential backoff
and picked up again by `outbox_flush`, which the worker runs periodically.
"""

from __future__ import annotations

import datetime as dt
import logging
from email.utils import formataddr, make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from guichet.core.models import OutgoingMail

logger = logging.getLogger(__name__)


def new_message_id() -> str:
    domain = settings.GUICHET_ADDRESS.rpartition("@")[2] or "guichet.localhost"
    return make_msgid(domain=domain).strip("<>")


def outbox_enqueue(
    *,
    kind: str,
    to_address: str,
    subject: str,
    body_text: str,
    request_id: int | None = None,
    in_reply_to: str = "",
    references: str = "",
    extra_headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> OutgoingMail:
    mail = OutgoingMail.objects.create(
        kind=kind,
        request_id=request_id,
        to_address=to_address,
        subject=subject[:500],
        body_text=body_text,
        message_id=message_id or new_message_id(),
        in_reply_to=in_reply_to,
        references=references,
        extra_headers=extra_headers or {},
    )
    transaction.on_commit(lambda: _enqueue_delivery(mail.pk))
    return mail


def _enqueue_delivery(mail_id: int) -> None:
    from guichet.core.tasks import outbox_deliver_task

    try:
        outbox_deliver_task.enqueue(mail_id=mail_id)
    except Exception:
        # The row is committed; outbox_flush will deliver it even if enqueueing failed.
        logger.exception("Could not enqueue delivery of outgoing mail %s", mail_id)


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


def _build_message(mail: OutgoingMail) -> EmailMessage:
    headers: dict[str, Any] = {"Message-ID": f"<{mail.message_id}>", **mail.extra_headers}
    if mail.in_reply_to:
        headers["In-Reply-To"] = f"<{mail.in_reply_to}>"
    if mail.references:
        headers["References"] = " ".join(f"<{ref}>" for ref in mail.references.split())
    return EmailMessage(
        subject=mail.subject,
        body=mail.body_text,
        from_email=formataddr((settings.GUICHET_FROM_NAME, settings.GUICHET_ADDRESS)),
        to=[mail.to_address],
        headers=headers,
    )


def outbox_deliver(*, mail_id: int) -> bool:
    """Try to send one mail now; safe to call twice (a sent mail is not sent again)."""
    with transaction.atomic():
        mail = OutgoingMail.objects.select_for_update().filter(pk=mail_id).first()
        if mail is None or mail.status != OutgoingMail.Status.QUEUED:
            return False
        # Claim the attempt before sending so two workers cannot both send it.
        mail.attempts += 1
        mail.next_attempt_at = timezone.now() + _backoff(mail.attempts)
        mail.save(update_fields=["attempts", "next_attempt_at"])
    try:
        with get_connection() as connection:
            connection.send_messages([_build_message(mail)])
    except Exception as exc:
        mail.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        fields = ["last_error"]
        if mail.attempts >= settings.GUICHET_OUTBOX_MAX_ATTEMPTS:
            mail.status = OutgoingMail.Status.FAILED
            fields.append("status")
        mail.save(update_fields=fields)
        logger.warning("Outgoing mail %s not sent (attempt %s): %s", mail.pk, mail.attempts, exc)
        return False
    mail.status = OutgoingMail.Status.SENT
    mail.sent_at = timezone.now()
    mail.last_error = ""
    mail.save(update_fields=["status", "sent_at", "last_error"])
    return True


def outbox_flush(*, limit: int = 200) -> int:
    """Deliver every queued mail whose next attempt is due; returns how many were sent."""
    due = list(
        OutgoingMail.objects.filter(status=OutgoingMail.Status.QUEUED, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for mail_id in due if outbox_deliver(mail_id=mail_id))

"""Turning a stored submission into a request, or into a new message of an existing one."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import replace

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from guichet.casework.acknowledgement import acknowledgement_subject, acknowledgement_text
from guichet.casework.campaigns import campaign_attach
from guichet.casework.models import (
    Attachment,
    AttachmentStatus,
    Message,
    Priority,
    Request,
    RequestStatus,
)
from guichet.casework.numbering import tracking_number_allocate
from guichet.core.attachment_safety import attachment_limits_check, attachment_verdict
from guichet.core.audit import audit_log
from guichet.core.blobs import blob_bytes, blob_put
from guichet.core.clamd import ClamdScanner
from guichet.core.deadlines import add_months
from guichet.core.errors import GuichetError
from guichet.core.models import OutgoingMail
from guichet.core.outbox import outbox_enqueue
from guichet.directory.models import Authority, Service
from guichet.intake.channels.email.dsn import Bounce
from guichet.intake.channels.registry import interpreter_for
from guichet.intake.interpreted import InboundAttachment, Interpreted, SenderInfo
from guichet.intake.models import Requester, Submission
from guichet.routing.decisions import RoutingDecision
from guichet.routing.models import RoutingRecord
from guichet.routing.router import route
from guichet.routing.topics import topics_of
from guichet.routing.urgency import urgency_of

logger = logging.getLogger(__name__)

MAX_PROCESSING_ATTEMPTS = 5


def thread_headers(request: Request) -> dict[str, str]:
    """Headers that bring the citizen's answer back to this request, whatever the client."""
    local, _, domain = settings.GUICHET_ADDRESS.partition("@")
    return {"Reply-To": f"{local}+{request.reply_token}@{domain}", "X-Guichet-Tracking": request.tracking_number}


def _tracking_number_pattern() -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(settings.GUICHET_TRACKING_PREFIX)}-\d{{4}}-\d{{6,}}\b")


def submission_process(*, submission_id: int) -> int | None:
    """Process one submission; idempotent, so the worker and the sweep may both call it.

    Returns the id of the request it opened or joined, None if it failed or was quarantined.
    """
    try:
        with transaction.atomic():
            submission = Submission.objects.select_for_update().get(pk=submission_id)
            if submission.status in {Submission.Status.PROCESSED, Submission.Status.QUARANTINED}:
                return submission.request_id
            request, quarantine_reason = _process(submission)
            now = timezone.now()
            submission.last_attempt_at = now
            submission.attempts += 1
            submission.last_error = ""
            if quarantine_reason:
                submission.status = Submission.Status.QUARANTINED
                submission.quarantine_reason = quarantine_reason[:300]
                audit_log(actor="system", verb="submission.quarantine", obj=submission, after={"reason": quarantine_reason})
            else:
                submission.status = Submission.Status.PROCESSED
                submission.processed_at = now
            submission.request = request
            submission.save(update_fields=["status", "processed_at", "last_attempt_at", "attempts", "last_error", "quarantine_reason", "request"])
            return request.pk if request is not None and not quarantine_reason else None
    except Exception as exc:
        logger.exception("Processing of submission %s failed", submission_id)
        _record_failure(submission_id, exc)
        return None


def submission_release(*, actor: User, submission_id: int) -> int | None:
    """An agent judged a quarantined submission legitimate: process it as usual."""
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(pk=submission_id)
        if submission.status != Submission.Status.QUARANTINED:
            raise GuichetError("Cette saisine n'est pas en quarantaine.")
        before = {"status": submission.status, "reason": submission.quarantine_reason}
        submission.status = Submission.Status.PENDING
        submission.released_at = timezone.now()
        submission.attempts = 0
        submission.save(update_fields=["status", "released_at", "attempts"])
        audit_log(actor=actor, verb="submission.release", obj=submission, before=before, after={"status": submission.status})
    return submission_process(submission_id=submission_id)


def _record_failure(submission_id: int, exc: Exception) -> None:
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(pk=submission_id)
        submission.attempts += 1
        submission.last_attempt_at = timezone.now()
        submission.last_error = f"{type(exc).__name__}: {exc}"[:4000]
        # After repeated failures a human looks at it; the raw input stays untouched either way.
        submission.status = (
            Submission.Status.QUARANTINED if submission.attempts >= MAX_PROCESSING_ATTEMPTS else Submission.Status.FAILED
        )
        submission.save(update_fields=["attempts", "last_attempt_at", "last_error", "status"])
        audit_log(actor="system", verb="submission.fail", obj=submission, after={"error": submission.last_error[:500], "status": submission.status})


def _process(submission: Submission) -> tuple[Request | None, str]:
    """Returns (request, quarantine reason); a non-empty reason means "hold for a human"."""
    interpreted = interpreter_for(submission.channel)(blob_bytes(submission.raw), submission.envelope)
    if interpreted.bounce is not None:
        return bounce_record(bounce=interpreted.bounce, submission=submission), ""
    if interpreted.spam_reason and submission.released_at is None:
        return None, interpreted.spam_reason
    if interpreted.message_id:
        duplicate = Message.objects.filter(message_id=interpreted.message_id).select_related("request").first()
        if duplicate is not None:
            if duplicate.from_address == (interpreted.sender.email or ""):
                return duplicate.request, ""
            # Someone reused another sender's Message-ID: keep the mail, not the claimed identity.
            interpreted = replace(interpreted, message_id=None)
    existing = _matching_request(interpreted)
    if existing is None:
        return request_open(interpreted=interpreted, submission=submission), ""
    if existing.status == RequestStatus.CLOSED and existing.closed_at is not None and existing.closed_at < timezone.now() - dt.timedelta(days=settings.GUICHET_REOPEN_WITHIN_DAYS):
        return request_open(interpreted=interpreted, submission=submission, parent=existing), ""
    message_add_inbound(request=existing, interpreted=interpreted, submission=submission)
    return existing, ""


def _matching_request(interpreted: Interpreted) -> Request | None:
    """The request this message continues, if the sender may continue it.

    The reply token of contact+<token>@ and a Message-ID we sent are secrets of the thread and
    prove it by themselves; a tracking number in the subject is public, so it only counts when
    the sender is the requester.
    """
    tokens = [address.split("@", 1)[0].split("+", 1)[1] for address in interpreted.recipients if "+" in address.split("@", 1)[0]]
    if tokens:
        request = Request.objects.filter(reply_token__in=tokens).first()
        if request is not None:
            return request
    known_ids = [mid for mid in (*interpreted.in_reply_to, *interpreted.references) if mid]
    if known_ids:
        message = Message.objects.filter(message_id__in=known_ids).exclude(direction=Message.Direction.INBOUND).select_related("request").order_by("-created_at").first()
        if message is not None:
            return message.request
        mail = OutgoingMail.objects.filter(message_id__in=known_ids, request__isnull=False).select_related("request").first()
        if mail is not None and mail.request is not None:
            return mail.request
    match = _tracking_number_pattern().search(interpreted.subject)
    if match and interpreted.sender.email:
        return (
            Request.objects.filter(tracking_number=match.group(0), requester__email__iexact=interpreted.sender.email)
            .select_related("requester")
            .first()
        )
    return None


def bounce_record(*, bounce: Bounce, submission: Submission) -> Request | None:
    """Mark the outgoing mail as undeliverable and tell the agents on its request."""
    mail = OutgoingMail.objects.filter(message_id__in=bounce.original_message_ids).select_related("request").first()
    if mail is None:
        logger.info("Bounce for an unknown message (%s)", bounce.original_message_ids[:3])
        return None
    if bounce.is_failure and mail.bounced_at is None:
        mail.bounced_at = timezone.now()
        mail.bounce_reason = f"{bounce.status} {bounce.diagnostic}".strip()[:500] or "adresse invalide"
        mail.save(update_fields=["bounced_at", "bounce_reason"])
        audit_log(actor="system", verb="outgoing_mail.bounce", obj=mail, after={"reason": mail.bounce_reason, "submission": submission.pk})
        if mail.request is not None:
            Message.objects.create(
                request=mail.request,
                direction=Message.Direction.INTERNAL,
                kind=Message.Kind.NOTE,
                subject="Adresse invalide : courriel non remis",
                body_text=f"Le courriel « {mail.subject} » envoyé à {mail.to_address} n'a pas pu être remis ({mail.bounce_reason}). Contactez l'usager par un autre moyen.",
                submission=submission,
            )
    return mail.request


def requester_resolve(*, sender: SenderInfo) -> Requester:
    requester = None
    if sender.email:
        requester = Requester.objects.filter(email__iexact=sender.email).order_by("pk").first()
    if requester is None:
        return Requester.objects.create(
            kind=sender.kind if sender.kind in Requester.Kind.values else Requester.Kind.PERSON,
            name=sender.name[:200],
            email=(sender.email or "")[:254],
            phone=sender.phone[:40],
            postal_address=sender.postal_address,
            siret=sender.siret[:14],
        )
    updates = {"name": sender.name[:200], "phone": sender.phone[:40], "postal_address": sender.postal_address}
    changed = [field for field, value in updates.items() if value and getattr(requester, field) != value]
    for field in changed:
        setattr(requester, field, updates[field])
    if changed:
        requester.save(update_fields=changed)
    return requester


def _attachment_scanner() -> ClamdScanner | None:
    if settings.GUICHET_CLAMD_SOCKET:
        return ClamdScanner(socket_path=settings.GUICHET_CLAMD_SOCKET)
    if settings.GUICHET_CLAMD_HOST:
        return ClamdScanner(host=settings.GUICHET_CLAMD_HOST, port=settings.GUICHET_CLAMD_PORT)
    return None


def _attachment(message: Message, attachment: InboundAttachment, scanner: ClamdScanner | None) -> Attachment:
    size = len(attachment.content)
    verdict = attachment_verdict(content=attachment.content, filename=attachment.filename, declared_type=attachment.declared_type, scanner=scanner)
    status: str = verdict.status
    reason = verdict.reason
    if status == AttachmentStatus.CLEAN and size > settings.GUICHET_MAX_ATTACHMENT_BYTES:
        status = AttachmentStatus.QUARANTINED
        reason = attachment_limits_check(sizes=[size], max_count=1, max_total=size, max_each=settings.GUICHET_MAX_ATTACHMENT_BYTES) or ""
    return Attachment(
        message=message,
        blob=blob_put(data=attachment.content),
        filename=attachment.filename[:255],
        size=size,
        content_type=verdict.detected_type[:120],
        declared_type=attachment.declared_type[:120],
        status=status,
        scan_result=reason[:300],
    )


def _store_message(*, request: Request, interpreted: Interpreted, submission: Submission) -> Message:
    message = Message.objects.create(
        request=request,
        direction=Message.Direction.INBOUND,
        kind=Message.Kind.CITIZEN,
        from_address=interpreted.sender.email or "",
        to_address=settings.GUICHET_ADDRESS,
        subject=interpreted.subject[:500],
        body_text=interpreted.text,
        body_html=interpreted.html,
        message_id=interpreted.message_id,
        submission=submission,
        created_at=submission.received_at,
        sender_verification=interpreted.sender_verification,
        authentication_results=interpreted.authentication_results[:2000],
    )
    scanner = _attachment_scanner() if interpreted.attachments else None
    Attachment.objects.bulk_create(_attachment(message, attachment, scanner) for attachment in interpreted.attachments)
    notes = list(interpreted.defects[:20])
    over_limits = attachment_limits_check(
        sizes=[len(a.content) for a in interpreted.attachments],
        max_count=settings.GUICHET_MAX_MAIL_ATTACHMENTS,
        max_total=settings.GUICHET_MAX_REQUEST_BYTES,
        max_each=settings.GUICHET_MAX_ATTACHMENT_BYTES,
    )
    if over_limits:
        notes.append(over_limits)
    if notes:
        # Agents should know the text they read may be incomplete; the raw mail is intact.
        Message.objects.create(
            request=request,
            direction=Message.Direction.INTERNAL,
            kind=Message.Kind.NOTE,
            subject="Anomalies de lecture du message reçu",
            body_text="\n".join(f"- {note}" for note in notes),
            submission=submission,
            created_at=submission.received_at,
        )
    return message


def request_open(*, interpreted: Interpreted, submission: Submission, parent: Request | None = None) -> Request:
    received_at = submission.received_at
    request = Request.objects.create(
        parent=parent,
        tracking_number=tracking_number_allocate(received_at=received_at),
        requester=requester_resolve(sender=interpreted.sender),
        channel=submission.channel,
        subject=interpreted.subject[:500],
        body_text=interpreted.text,
        received_at=received_at,
        legal_deadline=add_months(timezone.localdate(received_at), 2),
    )
    _store_message(request=request, interpreted=interpreted, submission=submission)
    audit_log(actor=f"channel:{submission.channel}", verb="request.open", obj=request, after={"tracking_number": request.tracking_number, "submission": submission.pk})
    transmit_to = request_apply_routing(request=request, decision=route(request))
    request_split_topics(request=request)
    request_flag_urgency(request=request, text=f"{interpreted.subject}\n{interpreted.text}")
    campaign_attach(request=request)
    if transmit_to is not None and not interpreted.is_automated:
        # The competent authority acknowledges it; the sender gets the transmission notice.
        from guichet.casework.services import request_forward

        request_forward(actor=None, request=request, authority=transmit_to, reason="La demande relève de la compétence de cette autorité (orientation automatique).", record_decision=False)
    elif interpreted.is_automated:
        logger.info("No acknowledgement for automated message on %s", request.tracking_number)
    else:
        request_acknowledge(request=request, send=not _acknowledgements_exhausted(request.requester.email))
    return request


def _acknowledgements_exhausted(email: str) -> bool:
    """Past N acknowledgements an hour to one address, we are probably in a mail loop."""
    if not email:
        return False
    since = timezone.now() - dt.timedelta(hours=1)
    sent = OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT, to_address__iexact=email, created_at__gte=since).count()
    return sent >= settings.GUICHET_ACK_MAX_PER_HOUR


def request_apply_routing(*, request: Request, decision: RoutingDecision) -> Authority | None:
    """Apply the router's decision; returns the authority to transmit to on our own, if any.

    Leaving the Région is a bigger step than choosing a service, so an outside authority is
    applied only above its own, higher threshold; below it, triage confirms in one click.
    """
    service = decision.target if isinstance(decision.target, Service) else None
    authority = decision.target if isinstance(decision.target, Authority) else None
    transmit = authority is not None and settings.GUICHET_AUTO_FORWARD and decision.confidence >= settings.GUICHET_AUTO_FORWARD_MIN_CONFIDENCE
    applied = service is not None or transmit
    RoutingRecord.objects.create(
        request=request,
        source=RoutingRecord.Source.AUTOMATIC,
        service=service,
        authority=authority,
        confidence=decision.confidence,
        explanation=decision.explanation,
        model_version=decision.model_version,
        applied=applied,
        rule_id=decision.rule_id,
    )
    if decision.language and decision.language != request.language:
        request.language = decision.language[:8]
        request.save(update_fields=["language"])
    if service is None:
        return authority if transmit else None
    request.service = service
    request.silence_means = service.silence_means
    request.status = RequestStatus.ROUTED
    request.updated_at = timezone.now()
    request.save(update_fields=["service", "silence_means", "status", "updated_at"])
    audit_log(actor="router", verb="request.route", obj=request, after={"service": service.code, "confidence": decision.confidence, "model": decision.model_version})
    return None


def request_acknowledge(*, request: Request, send: bool = True) -> Message:
    """Record the acknowledgement in the thread (the legal record) and send it if we can."""
    body = acknowledgement_text(request)
    subject = acknowledgement_subject(request)
    first = request.messages.filter(direction=Message.Direction.INBOUND).order_by("created_at").first()
    mail = None
    email = request.requester.email
    if email and send:
        mail = outbox_enqueue(
            kind=OutgoingMail.Kind.ACKNOWLEDGEMENT,
            to_address=email,
            subject=subject,
            body_text=body,
            request_id=request.pk,
            in_reply_to=(first.message_id or "") if first else "",
            references=(first.message_id or "") if first else "",
            extra_headers={"Auto-Submitted": "auto-replied", **thread_headers(request)},
        )
    message = Message.objects.create(
        request=request,
        direction=Message.Direction.OUTBOUND,
        kind=Message.Kind.ACKNOWLEDGEMENT,
        from_address=settings.GUICHET_ADDRESS,
        to_address=email,
        subject=subject,
        body_text=body,
        message_id=mail.message_id if mail else None,
        outgoing_mail=mail,
    )
    audit_log(actor="system", verb="request.acknowledge", obj=request, after={"to": email, "mail": mail.pk if mail else None, "sent": mail is not None})
    return message


def request_split_topics(*, request: Request) -> list[Request]:
    """One sub-request per other service a message also concerns, linked to the main one."""
    topics = topics_of(request.body_text)
    if not topics:
        return []
    entries: dict[str, Service | Authority] = {s.code: s for s in Service.objects.filter(is_active=True)}
    entries.update({a.code: a for a in Authority.objects.filter(is_active=True)})
    own = request.service.code if request.service else None
    if own is None and isinstance(entries.get(topics[0][0]), Service):
        # Mixed topics blur the whole message's score: the first matter keeps the main request.
        own = topics[0][0]
        request_apply_routing(request=request, decision=RoutingDecision(entries[own], 1.0, f"Message à plusieurs sujets : le premier concerne « {own} ».", "split"))
    children = []
    for number, (code, text) in enumerate(((c, t) for c, t in topics if c != own and c in entries), start=1):
        child = Request.objects.create(
            tracking_number=tracking_number_allocate(received_at=request.received_at),
            requester=request.requester,
            channel=request.channel,
            subject=f"{request.subject or 'Demande'} (partie {number})"[:500],
            body_text=text,
            received_at=request.received_at,
            legal_deadline=request.legal_deadline,
            parent=request,
            language=request.language,
        )
        explanation = f"Sous-demande : cette partie du message {request.tracking_number} concerne « {code} »."
        transmit_to = request_apply_routing(request=child, decision=RoutingDecision(entries[code], 1.0, explanation, "split"))
        if transmit_to is not None:
            from guichet.casework.services import request_forward

            request_forward(actor=None, request=child, authority=transmit_to, reason="Cette partie de la demande relève de la compétence de cette autorité.", record_decision=False)
        audit_log(actor="router", verb="request.split", obj=child, after={"parent": request.tracking_number, "code": code})
        children.append(child)
    return children


def request_flag_urgency(*, request: Request, text: str) -> bool:
    """Danger or distress puts the request first in every queue, and tells why."""
    verdict = urgency_of(text)
    if not verdict.urgent or request.priority == Priority.HIGH:
        return False
    request.priority = Priority.HIGH
    request.save(update_fields=["priority"])
    Message.objects.create(request=request, direction=Message.Direction.INTERNAL, kind=Message.Kind.NOTE, subject="Demande urgente", body_text=verdict.explanation())
    audit_log(actor="router", verb="request.flag_urgent", obj=request, after={"reasons": list(verdict.reasons)})
    return True


def message_add_inbound(*, request: Request, interpreted: Interpreted, submission: Submission) -> Message:
    message = _store_message(request=request, interpreted=interpreted, submission=submission)
    request_flag_urgency(request=request, text=f"{interpreted.subject}\n{interpreted.text}")
    before = request.status
    if request.status in {RequestStatus.ANSWERED, RequestStatus.CLOSED}:
        request.status = RequestStatus.IN_PROGRESS
        request.closed_at = None
    request.updated_at = timezone.now()
    request.save(update_fields=["status", "closed_at", "updated_at"])
    audit_log(actor=f"channel:{submission.channel}", verb="request.citizen_message", obj=request, before={"status": before}, after={"status": request.status, "message": message.pk})
    return message

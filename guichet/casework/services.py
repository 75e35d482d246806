"""What agents do to a request: reply, note, change status, reassign, transmit."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from guichet.casework.inbound import thread_headers
from guichet.casework.models import Message, Request, RequestStatus
from guichet.casework.status import can_transition
from guichet.core.audit import audit_log
from guichet.core.errors import GuichetError, InvalidTransition
from guichet.core.models import OutgoingMail
from guichet.core.outbox import outbox_enqueue
from guichet.directory.models import Authority, Service
from guichet.routing.models import RoutingRecord
from guichet.routing.training import labelled_example_record


def _locked(request: Request) -> Request:
    return Request.objects.select_for_update(of=("self",)).select_related("requester", "service").get(pk=request.pk)


def _set_status(request: Request, new: str) -> str:
    before = request.status
    if before != new and not can_transition(before, new):
        raise InvalidTransition(f"Passage impossible de « {request.get_status_display()} » à « {RequestStatus(new).label} ».")
    request.status = new
    now = timezone.now()
    request.updated_at = now
    if new == RequestStatus.ANSWERED:
        request.answered_at = now
    if new == RequestStatus.CLOSED:
        request.closed_at = now
    elif before == RequestStatus.CLOSED:
        request.closed_at = None
    return before


def _thread_ids(request: Request) -> tuple[str, str]:
    ids = [mid for mid in request.messages.exclude(direction=Message.Direction.INTERNAL).order_by("created_at").values_list("message_id", flat=True) if mid]
    last_inbound = request.messages.filter(direction=Message.Direction.INBOUND).exclude(message_id=None).order_by("-created_at").first()
    in_reply_to = last_inbound.message_id if last_inbound and last_inbound.message_id else (ids[-1] if ids else "")
    return in_reply_to or "", " ".join(ids[-10:])


@transaction.atomic
def request_reply(*, actor: User, request: Request, body: str) -> Message:
    request = _locked(request)
    body = body.strip()
    if not body:
        raise GuichetError("La réponse est vide.")
    email = request.requester.email
    if not email:
        raise GuichetError("L'usager n'a pas donné d'adresse électronique : la réponse doit partir par courrier.")
    subject = f"[{request.tracking_number}] Réponse à votre demande"
    if request.subject:
        subject += f" : {request.subject}"
    text = render_to_string("casework/mail/reply.txt", {"request": request, "body": body, "agent": actor})
    in_reply_to, references = _thread_ids(request)
    mail = outbox_enqueue(
        kind=OutgoingMail.Kind.REPLY,
        to_address=email,
        subject=subject,
        body_text=text,
        request_id=request.pk,
        in_reply_to=in_reply_to,
        references=references,
        extra_headers=thread_headers(request),
    )
    message = Message.objects.create(
        request=request,
        direction=Message.Direction.OUTBOUND,
        kind=Message.Kind.REPLY,
        author=actor,
        from_address=settings.GUICHET_ADDRESS,
        to_address=email,
        subject=subject[:500],
        body_text=body,
        message_id=mail.message_id,
        outgoing_mail=mail,
    )
    before = _set_status(request, RequestStatus.ANSWERED)
    request.save(update_fields=["status", "updated_at", "answered_at", "closed_at"])
    audit_log(actor=actor, verb="request.reply", obj=request, before={"status": before}, after={"status": request.status, "message": message.pk})
    return message


@transaction.atomic
def request_add_note(*, actor: User, request: Request, body: str) -> Message:
    body = body.strip()
    if not body:
        raise GuichetError("La note est vide.")
    message = Message.objects.create(request=request, direction=Message.Direction.INTERNAL, kind=Message.Kind.NOTE, author=actor, body_text=body)
    audit_log(actor=actor, verb="request.note", obj=request, after={"message": message.pk})
    return message


@transaction.atomic
def request_change_status(*, actor: User, request: Request, status: str) -> Request:
    request = _locked(request)
    if status not in RequestStatus.values:
        raise GuichetError("Statut inconnu.")
    before = _set_status(request, status)
    request.save(update_fields=["status", "updated_at", "answered_at", "closed_at"])
    audit_log(actor=actor, verb="request.status", obj=request, before={"status": before}, after={"status": status})
    return request


@transaction.atomic
def request_reassign(*, actor: User, request: Request, service: Service, reason: str) -> Request:
    request = _locked(request)
    reason = reason.strip()
    if not reason:
        raise GuichetError("Indiquez le motif de la réorientation.")
    before = {"service": request.service.code if request.service else None, "status": request.status}
    request.service = service
    request.authority = None
    request.silence_means = service.silence_means
    _set_status(request, RequestStatus.ROUTED if request.status in {RequestStatus.RECEIVED, RequestStatus.ROUTED, RequestStatus.FORWARDED} else request.status)
    request.save(update_fields=["service", "authority", "silence_means", "status", "updated_at", "answered_at", "closed_at"])
    RoutingRecord.objects.create(request=request, source=RoutingRecord.Source.HUMAN, service=service, confidence=1.0, decided_by=actor, reason=reason, applied=True, explanation="Réorientation manuelle")
    labelled_example_record(request=request, code=service.code)
    audit_log(actor=actor, verb="request.reassign", obj=request, before=before, after={"service": service.code, "reason": reason})
    return request


@transaction.atomic
def request_forward(*, actor: User | None, request: Request, authority: Authority, reason: str, record_decision: bool = True) -> Request:
    """Transmit to the competent authority and tell the sender (CRPA L114-2).

    actor None is the router transmitting on its own, its decision already recorded.
    """
    request = _locked(request)
    reason = reason.strip()
    if not reason:
        raise GuichetError("Indiquez le motif de la transmission.")
    before = {"status": request.status, "service": request.service.code if request.service else None}
    _set_status(request, RequestStatus.FORWARDED)
    request.authority = authority
    request.save(update_fields=["authority", "status", "updated_at", "answered_at", "closed_at"])
    context = {"request": request, "authority": authority, "reason": reason, "region_name": settings.GUICHET_REGION_NAME}
    outbox_enqueue(
        kind=OutgoingMail.Kind.FORWARD,
        to_address=authority.email,
        subject=f"[{request.tracking_number}] Transmission d'une demande (art. L114-2 CRPA)",
        body_text=render_to_string("casework/mail/transmission.txt", context),
        request_id=request.pk,
    )
    notice_text = render_to_string("casework/mail/forward_notice.txt", context)
    notice_subject = f"[{request.tracking_number}] Votre demande a été transmise à {authority.name}"
    email = request.requester.email
    mail = None
    if email:
        in_reply_to, references = _thread_ids(request)
        mail = outbox_enqueue(kind=OutgoingMail.Kind.NOTICE, to_address=email, subject=notice_subject, body_text=notice_text, request_id=request.pk, in_reply_to=in_reply_to, references=references, extra_headers={"Auto-Submitted": "auto-generated", **thread_headers(request)})
    Message.objects.create(
        request=request,
        direction=Message.Direction.OUTBOUND,
        kind=Message.Kind.FORWARD_NOTICE,
        author=actor,
        from_address=settings.GUICHET_ADDRESS,
        to_address=email,
        subject=notice_subject[:500],
        body_text=notice_text,
        message_id=mail.message_id if mail else None,
        outgoing_mail=mail,
    )
    if record_decision:
        RoutingRecord.objects.create(request=request, source=RoutingRecord.Source.HUMAN, authority=authority, confidence=1.0, decided_by=actor, reason=reason, applied=True, explanation="Transmission manuelle")
        labelled_example_record(request=request, code=authority.code)
    audit_log(actor=actor or "router", verb="request.forward", obj=request, before=before, after={"authority": authority.code, "reason": reason})
    return request


def campaign_reply(*, actor: User, request: Request, body: str) -> list[Message]:
    """One answer for a whole campaign: each member request the agent may see gets it."""
    from guichet.casework.access import requests_visible_to

    if request.campaign_id is None:
        raise GuichetError("Cette demande ne fait pas partie d'une campagne.")
    members = (
        requests_visible_to(actor)
        .filter(campaign_id=request.campaign_id)
        .exclude(status__in=[RequestStatus.CLOSED, RequestStatus.FORWARDED, RequestStatus.REJECTED_SPAM])
        .exclude(requester__email="")
        .order_by("received_at")
    )
    return [request_reply(actor=actor, request=member, body=body) for member in members]


@transaction.atomic
def request_report_misrouting(*, actor: User, request: Request, reason: str) -> Request:
    """One click from the service that received it: back to triage, and the model will learn."""
    request = _locked(request)
    before = {"service": request.service.code if request.service else None, "status": request.status}
    if request.service is None:
        raise GuichetError("Cette demande est déjà dans la file de tri.")
    request.service = None
    _set_status(request, RequestStatus.RECEIVED)
    request.save(update_fields=["service", "status", "updated_at", "answered_at", "closed_at"])
    RoutingRecord.objects.create(request=request, source=RoutingRecord.Source.HUMAN, confidence=0.0, decided_by=actor, reason=reason.strip() or "Erreur d'orientation signalée", explanation="Erreur d'orientation signalée : renvoyée au tri")
    audit_log(actor=actor, verb="request.report_misrouting", obj=request, before=before, after={"status": request.status})
    return request

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from guichet.casework import services
from guichet.casework.access import request_get_for_agent, requests_visible_to
from guichet.casework.forms import (
    ForwardForm,
    MisroutingForm,
    NoteForm,
    ReassignForm,
    ReplyForm,
    StatusForm,
)
from guichet.casework.inbound import submission_release
from guichet.casework.models import Attachment, AttachmentStatus, Request
from guichet.casework.selectors import (
    campaign_summary,
    quarantined_submissions,
    request_queue_for_agent,
    request_thread,
    triage_queue_for_agent,
)
from guichet.core.blobs import blob_bytes
from guichet.core.errors import GuichetError, NotFound
from guichet.core.previews import PREVIEWABLE_TYPES, preview_png_of_pdf
from guichet.intake.models import Submission


def _agent(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise Http404
    return user


def _get(request: HttpRequest, tracking_number: str) -> Request:
    try:
        return request_get_for_agent(agent=request.user, tracking_number=tracking_number)
    except NotFound:
        raise Http404 from None


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    agent = _agent(request)
    profile = getattr(agent, "agent", None)
    is_triage = bool(getattr(profile, "is_triage", False) or getattr(agent, "is_superuser", False))
    context = {
        "mine": request_queue_for_agent(agent=agent)[:200],
        "triage": triage_queue_for_agent(agent=agent)[:200] if is_triage else None,
        "services": list(profile.services.all()) if profile else [],
    }
    return render(request, "agent/queue.html", context)


def _detail_context(request_obj: Request, **forms_override: forms.Form) -> dict[str, Any]:
    context: dict[str, Any] = {
        "request_obj": request_obj,
        "thread": request_thread(request=request_obj, include_internal=True),
        "routing_records": request_obj.routing_records.select_related("service", "authority", "decided_by"),
        "previewable": PREVIEWABLE_TYPES,
        "bounced": request_obj.outgoing_mails.filter(bounced_at__isnull=False).order_by("-bounced_at").first(),
        "reply_form": ReplyForm(),
        "campaign_reply_form": ReplyForm(prefix="campagne"),
        "campaign": campaign_summary(request=request_obj),
        "note_form": NoteForm(),
        "status_form": StatusForm(),
        "reassign_form": ReassignForm(),
        "forward_form": ForwardForm(),
        "misrouting_form": MisroutingForm(),
    }
    context.update(forms_override)
    return context


@login_required
def request_detail(request: HttpRequest, tracking_number: str) -> HttpResponse:
    return render(request, "agent/request_detail.html", _detail_context(_get(request, tracking_number)))


Action = Callable[[User, Request, dict[str, Any]], object]

ACTIONS: dict[str, tuple[type[forms.Form], str, Action, str]] = {
    "repondre": (ReplyForm, "reply_form", lambda a, r, d: services.request_reply(actor=a, request=r, body=d["body"]), "Réponse envoyée à l'usager."),
    "repondre-campagne": (ReplyForm, "campaign_reply_form", lambda a, r, d: services.campaign_reply(actor=a, request=r, body=d["body"]), "Réponse envoyée à toutes les demandes de la campagne."),
    "signaler-erreur": (MisroutingForm, "misrouting_form", lambda a, r, d: services.request_report_misrouting(actor=a, request=r, reason=d["reason"]), "Erreur d'orientation signalée : la demande retourne à l'équipe de tri."),
    "note": (NoteForm, "note_form", lambda a, r, d: services.request_add_note(actor=a, request=r, body=d["body"]), "Note ajoutée."),
    "statut": (StatusForm, "status_form", lambda a, r, d: services.request_change_status(actor=a, request=r, status=d["status"]), "Statut modifié."),
    "reorienter": (ReassignForm, "reassign_form", lambda a, r, d: services.request_reassign(actor=a, request=r, service=d["service"], reason=d["reason"]), "Demande réorientée."),
    "transmettre": (ForwardForm, "forward_form", lambda a, r, d: services.request_forward(actor=a, request=r, authority=d["authority"], reason=d["reason"]), "Demande transmise à l'autorité compétente ; l'usager est informé."),
}


@login_required
@require_POST
def request_action(request: HttpRequest, tracking_number: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404
    request_obj = _get(request, tracking_number)
    form_class, form_name, perform, done = ACTIONS[action]
    form = form_class(request.POST, prefix="campagne" if action == "repondre-campagne" else None)
    if not form.is_valid():
        return render(request, "agent/request_detail.html", _detail_context(request_obj, **{form_name: form}), status=400)
    try:
        perform(_agent(request), request_obj, form.cleaned_data)
    except GuichetError as exc:
        messages.error(request, exc.message)
        return redirect("agent:request_detail", tracking_number=tracking_number)
    messages.success(request, done)
    if not requests_visible_to(request.user).filter(pk=request_obj.pk).exists():
        return redirect("agent:queue")
    return redirect("agent:request_detail", tracking_number=tracking_number)


@login_required
def attachment_download(request: HttpRequest, tracking_number: str, attachment_id: int) -> HttpResponse:
    request_obj = _get(request, tracking_number)
    attachment = Attachment.objects.select_related("blob").filter(pk=attachment_id, message__request=request_obj).first()
    if attachment is None:
        raise Http404
    if attachment.status != AttachmentStatus.CLEAN:
        return render(request, "agent/attachment_blocked.html", {"attachment": attachment, "request_obj": request_obj}, status=403)
    # Always a download, never rendered in our origin: the content comes from outside.
    response = HttpResponse(blob_bytes(attachment.blob), content_type="application/octet-stream")
    safe_name = attachment.filename.replace('"', "").replace("\\", "")
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _require_triage(user: User) -> None:
    profile = getattr(user, "agent", None)
    if not (user.is_superuser or getattr(profile, "is_triage", False)):
        raise Http404


@login_required
def quarantine(request: HttpRequest) -> HttpResponse:
    agent = _agent(request)
    _require_triage(agent)
    return render(request, "agent/quarantine.html", {"items": quarantined_submissions()})


@login_required
@require_POST
def quarantine_release(request: HttpRequest, submission_id: int) -> HttpResponse:
    agent = _agent(request)
    _require_triage(agent)
    try:
        request_id = submission_release(actor=agent, submission_id=submission_id)
    except (GuichetError, Submission.DoesNotExist):
        messages.error(request, "Cette saisine n'est plus en quarantaine.")
        return redirect("agent:quarantine")
    if request_id is None:
        messages.error(request, "La saisine a été libérée mais son traitement a échoué ; elle sera retentée.")
    else:
        messages.success(request, "Saisine libérée : la demande a été créée et orientée.")
    return redirect("agent:quarantine")


@login_required
def attachment_preview(request: HttpRequest, tracking_number: str, attachment_id: int) -> HttpResponse:
    request_obj = _get(request, tracking_number)
    attachment = Attachment.objects.select_related("blob").filter(pk=attachment_id, message__request=request_obj).first()
    if attachment is None or attachment.status != AttachmentStatus.CLEAN or attachment.content_type not in PREVIEWABLE_TYPES:
        raise Http404
    data = blob_bytes(attachment.blob)
    content_type = attachment.content_type
    if content_type == "application/pdf":
        rendered = preview_png_of_pdf(data)
        if rendered is None:
            raise Http404
        data, content_type = rendered, "image/png"
    response = HttpResponse(data, content_type=content_type)
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response

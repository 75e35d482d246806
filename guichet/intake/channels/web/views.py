from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from guichet.casework.acknowledgement import acknowledgement_context
from guichet.casework.inbound import submission_process
from guichet.casework.models import Request
from guichet.casework.selectors import request_get_public
from guichet.core.blobs import blob_put
from guichet.core.ratelimit import client_ip, rate_limit_hit
from guichet.intake.channels.web.forms import RequestForm
from guichet.intake.inbound import InboundMessage
from guichet.intake.models import Channel, Submission
from guichet.intake.services import submission_receive

DRAFT_SALT = "guichet.web.draft"
# A citizen may take their time on the review page: a long message is never lost to a time-out.
DRAFT_MAX_AGE = 7 * 24 * 3600
TEXT_FIELDS = ("kind", "name", "email", "phone", "postal_address", "siret", "subject", "message")


def _form(data: Any = None, files: Any = None, initial: dict[str, Any] | None = None) -> RequestForm:
    return RequestForm(
        data, files, initial=initial,
        max_files=settings.GUICHET_MAX_FORM_ATTACHMENTS,
        max_bytes=settings.GUICHET_MAX_REQUEST_BYTES,
    )


def _too_many(request: HttpRequest, scope: str) -> HttpResponse | None:
    if rate_limit_hit(scope=scope, key=client_ip(request), limit=settings.GUICHET_PUBLIC_RATE_LIMIT):
        response = render(request, "web/rate_limited.html", status=429)
        response["Retry-After"] = "60"
        return response
    return None


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "web/home.html")


def accessibility(request: HttpRequest) -> HttpResponse:
    return render(request, "web/accessibility.html")


@require_http_methods(["GET", "POST"])
def request_form(request: HttpRequest) -> HttpResponse:
    """Step 1: write. Step 2 (on a valid POST): review before the final send (RGAA)."""
    if request.method == "GET":
        return render(request, "web/request_form.html", {"form": _form(), "form_token": secrets.token_urlsafe(24)})
    if limited := _too_many(request, "form"):
        return limited
    form_token = str(request.POST.get("form_token") or secrets.token_urlsafe(24))[:64]
    form = _form(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "web/request_form.html", {"form": form, "form_token": form_token}, status=400)
    attachments = []
    for upload in form.cleaned_data["attachments"]:
        content = upload.read()
        blob = blob_put(data=content)
        attachments.append({"filename": upload.name or "piece-jointe", "declared_type": upload.content_type or "", "sha256": blob.sha256, "size": len(content)})
    draft = {field: form.cleaned_data[field] for field in TEXT_FIELDS} | {"attachments": attachments, "form_token": form_token}
    return render(request, "web/request_review.html", {"draft": draft, "signed_draft": signing.dumps(draft, salt=DRAFT_SALT, compress=True), "kind_label": dict(form.fields["kind"].choices).get(draft["kind"], "")})  # type: ignore[attr-defined]


@require_http_methods(["POST"])
def request_send(request: HttpRequest) -> HttpResponse:
    if limited := _too_many(request, "send"):
        return limited
    try:
        draft: dict[str, Any] = signing.loads(request.POST.get("draft", ""), salt=DRAFT_SALT, max_age=DRAFT_MAX_AGE)
    except signing.BadSignature:
        return render(request, "web/request_form.html", {"form": _form(), "form_token": secrets.token_urlsafe(24), "draft_expired": True}, status=400)
    if request.POST.get("action") == "edit":
        initial = {field: draft.get(field, "") for field in TEXT_FIELDS}
        return render(request, "web/request_form.html", {"form": _form(initial=initial), "form_token": draft["form_token"], "attachments_dropped": bool(draft.get("attachments"))})
    raw = json.dumps(draft, ensure_ascii=False, sort_keys=True).encode("utf-8")
    submission, _ = submission_receive(
        inbound=InboundMessage(
            channel=Channel.WEB,
            idempotency_key=f"form:{draft['form_token']}",
            raw=raw,
            envelope={"ip": client_ip(request), "user_agent": request.headers.get("User-Agent", "")[:300]},
        )
    )
    # The citizen waits for the number, so process now; if this fails the worker retries later.
    request_id = submission.request_id or submission_process(submission_id=submission.pk)
    if request_id is None:
        return redirect("web:request_registered", form_token=draft["form_token"])
    public_id = Request.objects.values_list("public_id", flat=True).get(pk=request_id)
    return redirect("web:request_confirmation", public_id=public_id)


def request_registered(request: HttpRequest, form_token: str) -> HttpResponse:
    submission = Submission.objects.filter(channel=Channel.WEB, idempotency_key=f"form:{form_token}").select_related("request").first()
    if submission is None:
        raise Http404
    if submission.request is not None:
        return redirect("web:request_confirmation", public_id=submission.request.public_id)
    return render(request, "web/request_registered.html", {"submission": submission})


def request_confirmation(request: HttpRequest, public_id: str) -> HttpResponse:
    found = request_get_public(public_id=public_id)
    if found is None:
        raise Http404
    return render(request, "web/request_confirmation.html", acknowledgement_context(found))

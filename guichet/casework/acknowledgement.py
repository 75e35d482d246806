"""The accusé de réception (CRPA L112-3, R112-5): the facts it must state, built once.

The same context renders the email and the web confirmation page, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from guichet.casework.models import Request


def service_contact(request: Request) -> dict[str, str]:
    if request.service is not None:
        service = request.service
        return {"name": service.name, "postal_address": service.postal_address, "email": service.email, "phone": service.phone}
    return dict(settings.GUICHET_RECEPTION)


def acknowledgement_context(request: Request) -> dict[str, Any]:
    return {
        "request": request,
        "region_name": settings.GUICHET_REGION_NAME,
        "contact": service_contact(request),
        "in_triage": request.service is None,
        "silence_is_rejection": request.silence_means != "acceptance",
        "court": settings.GUICHET_ADMINISTRATIVE_COURT,
        "tracking_url": request.tracking_url(),
        "guichet_address": settings.GUICHET_ADDRESS,
        "parts": list(request.linked_requests.select_related("service", "authority").order_by("pk")),
    }


def acknowledgement_subject(request: Request) -> str:
    return f"[{request.tracking_number}] Accusé de réception de votre demande"


def acknowledgement_text(request: Request) -> str:
    return render_to_string("casework/mail/acknowledgement.txt", acknowledgement_context(request)).strip() + "\n"

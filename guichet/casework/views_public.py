from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from guichet.casework.selectors import request_get_public, request_thread


def tracking(request: HttpRequest, public_id: str) -> HttpResponse:
    found = request_get_public(public_id=public_id)
    if found is None:
        raise Http404
    response = render(request, "public/tracking.html", {"request_obj": found, "thread": request_thread(request=found, include_internal=False)})
    # The link is a secret: keep it out of shared caches and search engines.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def guichet(request: HttpRequest) -> dict[str, Any]:
    return {
        "region_name": settings.GUICHET_REGION_NAME,
        "guichet_address": settings.GUICHET_ADDRESS,
    }

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from guichet.core.sanitize import sanitize_citizen_html

register = template.Library()


@register.filter
def citizen_html(value: str) -> SafeString:
    return SafeString(sanitize_citizen_html(value or ""))

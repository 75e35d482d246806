"""Accessible form fields (RGAA): visible label, hint and error tied to the input by ARIA."""

from __future__ import annotations

from typing import Any

from django import template
from django.forms import BoundField
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def field_block(field: BoundField, **attrs: Any) -> SafeString:
    described_by = []
    if field.help_text:
        described_by.append(f"{field.auto_id}-hint")
    if field.errors:
        described_by.append(f"{field.auto_id}-error")
        attrs["aria-invalid"] = "true"
    if described_by:
        attrs["aria-describedby"] = " ".join(described_by)
    if field.field.required:
        attrs["aria-required"] = "true"
    widget = field.as_widget(attrs=attrs)
    return SafeString(render_to_string("web/_field.html", {"field": field, "widget": widget}))

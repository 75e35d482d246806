"""Several topics in one message: which parts of the text belong to which code.

Each paragraph long enough to stand alone is classified on its own; a message is split only
when at least two paragraphs go, confidently, to two different codes.
"""

from __future__ import annotations

import re

from django.conf import settings

from guichet.intake.channels.email.parsing import strip_quoted_reply
from guichet.routing.model_store import classify_for_routing

MIN_WORDS = 12


def _paragraphs(text: str) -> list[str]:
    blocks = [block.strip() for block in re.split(r"\n\s*\n", strip_quoted_reply(text)) if block.strip()]
    merged: list[str] = []
    for block in blocks:
        # A short line (a greeting, "Autre chose :") belongs with what follows it.
        if merged and len(merged[-1].split()) < MIN_WORDS:
            merged[-1] = f"{merged[-1]}\n{block}"
        else:
            merged.append(block)
    return [block for block in merged if len(block.split()) >= MIN_WORDS]


def topics_of(text: str) -> list[tuple[str, str]]:
    """[(code, text of that topic)] in the message's order, or [] when it is about one thing."""
    paragraphs = _paragraphs(text[:50_000])
    if len(paragraphs) < 2:
        return []
    grouped: dict[str, list[str]] = {}
    for paragraph in paragraphs[:20]:
        decision = classify_for_routing("", paragraph)
        if decision is None:
            return []
        if decision.auto and decision.probability >= settings.GUICHET_SPLIT_MIN_CONFIDENCE:
            grouped.setdefault(decision.code, []).append(paragraph)
    if len(grouped) < 2:
        return []
    return [(code, "\n\n".join(parts)) for code, parts in grouped.items()]

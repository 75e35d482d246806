"""Administrators' exact rules (sender domain, reference pattern, phrase). Pure functions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from guichet.routing.rules import normalize

MAX_TEXT = 100_000


@dataclass(frozen=True)
class RuleSpec:
    rule_id: int
    name: str
    kind: str
    pattern: str
    code: str


def pattern_error(kind: str, pattern: str) -> str | None:
    """Why a rule's pattern is unusable, in French; None when it is fine."""
    if not pattern.strip():
        return "Le motif est vide."
    if kind == "reference":
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"Expression régulière invalide : {exc}."
    if kind == "sender_domain" and ("@" in pattern or " " in pattern.strip()):
        return "Indiquez un domaine seul, par exemple ac-lyon.fr."
    return None


def _matches(rule: RuleSpec, *, sender_domain: str, text: str, normalized: str) -> bool:
    if rule.kind == "sender_domain":
        domain = rule.pattern.strip().lower().lstrip("@")
        return sender_domain == domain or sender_domain.endswith("." + domain)
    if rule.kind == "reference":
        try:
            return re.search(rule.pattern, text, re.IGNORECASE) is not None
        except re.error:
            return False
    if rule.kind == "phrase":
        return f" {normalize(rule.pattern).strip()} " in normalized
    return False


def rule_matching(rules: Sequence[RuleSpec], *, sender_email: str, text: str) -> RuleSpec | None:
    """The first rule (in the given priority order) that matches, or None."""
    text = text[:MAX_TEXT]
    sender_domain = sender_email.rpartition("@")[2].strip().lower()
    normalized = normalize(text)
    return next((rule for rule in rules if _matches(rule, sender_domain=sender_domain, text=text, normalized=normalized)), None)

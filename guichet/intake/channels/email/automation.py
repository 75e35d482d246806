"""Recognising mail sent by robots, which must never be acknowledged (RFC 3834)."""

from __future__ import annotations

import re

_AUTO_SUBJECT = re.compile(r"^\s*(r[ée]ponse automatique|absence|out of office|auto(matic)? ?reply|automatische antwort)", re.I)
_ROBOT_LOCALPARTS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "ne-pas-repondre", "nepasrepondre"}


def is_automated(headers: tuple[tuple[str, str], ...], sender: str | None, envelope_from: str | None) -> bool:
    """envelope_from is None when unknown (a file import), "" for the null sender of bounces."""
    values: dict[str, str] = {}
    for name, value in headers:
        values.setdefault(name.lower(), value)
    if values.get("auto-submitted", "no").strip().lower() not in {"", "no"}:
        return True
    if "x-autoreply" in values or "x-autorespond" in values or "list-id" in values:
        return True
    if values.get("precedence", "").strip().lower() in {"bulk", "list", "junk", "auto_reply"}:
        return True
    if envelope_from is not None and envelope_from.strip() in {"", "<>"}:
        return True
    if _AUTO_SUBJECT.search(values.get("subject", "")):
        return True
    localpart = (sender or "").partition("@")[0].lower()
    return localpart in _ROBOT_LOCALPARTS

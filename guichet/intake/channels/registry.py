"""One adapter per channel, same shape: `interpret(raw, envelope) -> Interpreted`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from guichet.intake.channels.email.adapter import interpret as interpret_email
from guichet.intake.channels.web.adapter import interpret as interpret_web
from guichet.intake.interpreted import Interpreted

Interpreter = Callable[[bytes, dict[str, Any]], Interpreted]

INTERPRETERS: dict[str, Interpreter] = {
    "email": interpret_email,
    "web": interpret_web,
}


def interpreter_for(channel: str) -> Interpreter:
    try:
        return INTERPRETERS[channel]
    except KeyError:
        raise ValueError(f"No interpreter for channel {channel!r}") from None

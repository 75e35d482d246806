"""The request life cycle: which status may follow which."""

from __future__ import annotations

from guichet.casework.models import RequestStatus as S

TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.ROUTED, S.IN_PROGRESS, S.FORWARDED, S.REJECTED_SPAM, S.CLOSED}),
    S.ROUTED: frozenset({S.RECEIVED, S.ROUTED, S.IN_PROGRESS, S.ANSWERED, S.FORWARDED, S.CLOSED, S.REJECTED_SPAM}),
    S.IN_PROGRESS: frozenset({S.RECEIVED, S.ROUTED, S.ANSWERED, S.FORWARDED, S.CLOSED}),
    S.ANSWERED: frozenset({S.IN_PROGRESS, S.ANSWERED, S.CLOSED}),
    S.CLOSED: frozenset({S.IN_PROGRESS}),
    S.FORWARDED: frozenset({S.RECEIVED, S.ROUTED, S.IN_PROGRESS}),
    S.REJECTED_SPAM: frozenset({S.RECEIVED}),
}

# What an agent may choose directly on the request page; the rest follows from actions.
AGENT_CHOOSABLE = (S.IN_PROGRESS, S.CLOSED, S.REJECTED_SPAM)


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())

from __future__ import annotations

from dataclasses import dataclass

from guichet.directory.models import Authority, Service


@dataclass(frozen=True)
class RoutingDecision:
    """The router's answer: a target (or None for the triage queue) and why."""

    target: Service | Authority | None
    confidence: float
    explanation: str
    model_version: str
    suggestions: tuple[tuple[str, float], ...] = ()
    language: str | None = None
    rule_id: int | None = None

    @property
    def target_code(self) -> str | None:
        return self.target.code if self.target is not None else None

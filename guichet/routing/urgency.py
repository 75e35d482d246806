"""Danger and distress, whatever the service: these requests are shown first. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from guichet.routing.rules import normalize

# Phrases rather than single words: "feu" alone is also a traffic light or a firework.
URGENT_PHRASES: dict[str, tuple[str, ...]] = {
    "gaz": ("fuite de gaz", "odeur de gaz", "ca sent le gaz", "gas leak", "smell of gas"),
    "incendie": ("incendie", "au feu", "feu dans", "le feu a pris", "en feu", "fumee epaisse", "on fire", "fire in"),
    "menace": ("menace de mort", "menaces de mort", "il m a menace", "m a menacee", "nous a menaces", "menace avec", "une arme", "un couteau", "une bombe", "alerte a la bombe", "death threat", "threatened me", "a gun", "a knife"),
    "harcelement": ("harcelement", "harcele", "harcelee", "harceler", "bully", "bullied", "harass"),
    "detresse": ("suicide", "me suicider", "suicidaire", "mettre fin a mes jours", "en finir avec la vie", "je veux mourir", "plus envie de vivre", "kill myself", "end my life", "want to die"),
    "violence": ("violence", "violences", "agression", "agresse", "agressee", "frappe mon", "m a frappe", "coups et blessures", "attouchement", "abus sexuel", "assault", "beaten", "sexual abuse"),
    "danger": ("en danger", "danger de mort", "danger immediat", "risque d effondrement", "electrocution", "fils electriques denudes", "in danger"),
}


@dataclass(frozen=True)
class UrgencyVerdict:
    urgent: bool
    reasons: tuple[str, ...]
    matched: tuple[str, ...]

    def explanation(self) -> str:
        if not self.urgent:
            return ""
        return f"Signalement urgent ({', '.join(self.reasons)}) : « {' », « '.join(self.matched[:5])} »."


def urgency_of(text: str) -> UrgencyVerdict:
    haystack = normalize(text[:200_000])
    reasons: list[str] = []
    matched: list[str] = []
    for reason, phrases in URGENT_PHRASES.items():
        hits = [phrase for phrase in phrases if f" {phrase} " in haystack]
        if hits:
            reasons.append(reason)
            matched.extend(hits)
    return UrgencyVerdict(urgent=bool(reasons), reasons=tuple(reasons), matched=tuple(matched))

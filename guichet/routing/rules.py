"""Routing v0: transparent keyword rules over the directory. Pure functions, no ORM."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache


def normalize(text: str) -> str:
    """Lowercase, accents removed, punctuation as spaces: 'Lycée' and 'LYCEE' match 'lycee'."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " " + re.sub(r"[^a-z0-9]+", " ", stripped.replace("œ", "oe").replace("æ", "ae")).strip() + " "


@lru_cache(maxsize=8192)
def _needle(keyword: str) -> str:
    # Keywords change only when an admin edits the directory; normalise each one once.
    return f" {normalize(keyword).strip()} "


@dataclass(frozen=True)
class RuleSet:
    code: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class RuleScore:
    code: str
    score: float
    matched: tuple[str, ...]


def score_text(text: str, rule_sets: Iterable[RuleSet]) -> list[RuleScore]:
    """Score each code by its matched keywords; a longer phrase weighs more than one word."""
    haystack = normalize(text)
    scores: list[RuleScore] = []
    for rule_set in rule_sets:
        matched = tuple(kw for kw in rule_set.keywords if _needle(kw) in haystack)
        if matched:
            score = sum(1.0 + 0.5 * (len(kw.split()) - 1) for kw in matched)
            scores.append(RuleScore(code=rule_set.code, score=score, matched=matched))
    scores.sort(key=lambda s: (-s.score, s.code))
    return scores


def confidence_of(scores: Sequence[RuleScore]) -> float:
    """Share of the evidence for the winner, damped when the evidence itself is thin."""
    if not scores:
        return 0.0
    top = scores[0].score
    runner_up = scores[1].score if len(scores) > 1 else 0.0
    margin = top / (top + runner_up)
    strength = min(1.0, top / 2.0)
    return round(margin * strength, 3)

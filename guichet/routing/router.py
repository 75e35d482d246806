"""`route(request)`: the one routing entry point; the learned model will sit behind it."""

from __future__ import annotations

from django.conf import settings

from guichet.casework.models import Request
from guichet.directory.models import Authority, Service
from guichet.intake.channels.email.parsing import strip_quoted_reply
from guichet.routing.decisions import RoutingDecision
from guichet.routing.rules import RuleSet, confidence_of, score_text

MODEL_VERSION = "rules-v0"


def route(request: Request) -> RoutingDecision:
    entries: dict[str, Service | Authority] = {}
    for service in Service.objects.filter(is_active=True):
        entries[service.code] = service
    for authority in Authority.objects.filter(is_active=True):
        entries[authority.code] = authority
    rule_sets = [RuleSet(code=code, keywords=tuple(entry.keywords or ())) for code, entry in entries.items()]
    # Quoted earlier mails and signatures would drag in other topics: route on the new text only.
    scores = score_text(f"{request.subject}\n{strip_quoted_reply(request.body_text)}", rule_sets)
    confidence = confidence_of(scores)
    suggestions = tuple((s.code, s.score) for s in scores[:3])
    if not scores:
        return RoutingDecision(None, 0.0, "Aucun mot-clé de l'annuaire reconnu.", MODEL_VERSION, suggestions)
    best = scores[0]
    explanation = f"Mots-clés reconnus pour « {best.code} » : {', '.join(best.matched)}."
    if len(scores) > 1:
        explanation += " Autres pistes : " + ", ".join(f"{s.code} ({', '.join(s.matched[:3])})" for s in scores[1:3]) + "."
    target = entries[best.code] if confidence >= settings.GUICHET_ROUTING_THRESHOLD else None
    if target is None:
        explanation = f"Confiance insuffisante ({confidence:.2f}) : à trier. " + explanation
    return RoutingDecision(target, confidence, explanation, MODEL_VERSION, suggestions)

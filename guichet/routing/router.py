"""`route(request)`: the one routing entry point.

Order: the administrators' exact rules, then the trained model, then — when no model is
available — the directory's keywords (v0), so intake never depends on the model being there.
"""

from __future__ import annotations

from django.conf import settings

from guichet.casework.models import Request
from guichet.directory.models import Authority, Service
from guichet.intake.channels.email.parsing import strip_quoted_reply
from guichet.routing.admin_rules import RuleSpec, rule_matching
from guichet.routing.decisions import RoutingDecision
from guichet.routing.model_store import classify_for_routing, explanation_for
from guichet.routing.models import RoutingRule
from guichet.routing.rules import RuleSet, confidence_of, score_text

MODEL_VERSION = "rules-v0"


def _directory() -> dict[str, Service | Authority]:
    entries: dict[str, Service | Authority] = {s.code: s for s in Service.objects.filter(is_active=True)}
    entries.update({a.code: a for a in Authority.objects.filter(is_active=True)})
    return entries


def _admin_rules() -> list[RuleSpec]:
    rules = RoutingRule.objects.filter(is_active=True).select_related("service", "authority").order_by("priority", "pk")
    return [
        RuleSpec(rule_id=r.pk, name=r.name, kind=r.kind, pattern=r.pattern, code=(r.service or r.authority).code)  # type: ignore[union-attr]
        for r in rules
        if r.service or r.authority
    ]


def route(request: Request) -> RoutingDecision:
    entries = _directory()
    # Quoted earlier mails and signatures would drag in other topics: route on the new text only.
    text = f"{request.subject}\n{strip_quoted_reply(request.body_text)}"
    rule = rule_matching(_admin_rules(), sender_email=request.requester.email, text=text)
    if rule is not None and rule.code in entries:
        return RoutingDecision(entries[rule.code], 1.0, f"Règle « {rule.name} » ({rule.pattern}).", f"rule:{rule.rule_id}", rule_id=rule.rule_id)
    decision = classify_for_routing(request.subject, strip_quoted_reply(request.body_text))
    if decision is not None and decision.code in entries:
        confident = decision.auto and decision.probability >= settings.GUICHET_ROUTING_THRESHOLD
        return RoutingDecision(
            entries[decision.code] if confident else None,
            decision.probability,
            explanation_for(decision),
            decision.model_version,
            decision.top,
            language=decision.language,
        )
    return _keyword_route(text, entries)


def _keyword_route(text: str, entries: dict[str, Service | Authority]) -> RoutingDecision:
    rule_sets = [RuleSet(code=code, keywords=tuple(entry.keywords or ())) for code, entry in entries.items()]
    scores = score_text(text, rule_sets)
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

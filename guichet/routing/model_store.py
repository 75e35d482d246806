"""The active router model, loaded once per process and reloaded when another is promoted.

`classify_for_routing` never raises: a missing or unreadable model logs an error (the alert)
and returns None, and the router then falls back to the keyword rules and triage.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError

from guichet.routing.classifier import ClassifierDecision, RouterClassifier
from guichet.routing.models import RouterModel

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: RouterClassifier | None = None
_loaded_version: str | None = None
_failed_version: str | None = None


def active_classifier() -> RouterClassifier | None:
    """The promoted model, or None (with an error logged once per version) if there is none
    or it cannot be read."""
    global _loaded, _loaded_version, _failed_version
    with _lock:
        # One indexed query a message tells which version is active, so a promotion (or a
        # rollback) reaches every web and worker process at their next message.
        try:
            version = (
                RouterModel.objects.filter(is_active=True).values_list("version", flat=True).first()
            )
        except DatabaseError:
            logger.exception("Router model lookup failed; routing by rules")
            return _loaded
        if version is None:
            if _loaded_version is not None or _failed_version != "":
                logger.error(
                    "No active router model: routing falls back to keyword rules. Run `guichet train_router`."
                )
            _loaded, _loaded_version, _failed_version = None, None, ""
            return None
        if version == _loaded_version or version == _failed_version:
            return _loaded
        try:
            payload = (
                RouterModel.objects.filter(version=version).values_list("payload", flat=True).get()
            )
            started = time.perf_counter()
            model = RouterClassifier.loads(bytes(payload))
        except (ValueError, RouterModel.DoesNotExist, DatabaseError):
            logger.exception(
                "Router model %s cannot be loaded: routing falls back to keyword rules. Run `guichet train_router`.",
                version,
            )
            # Keep serving the previous model if there was one: better than rules.
            _failed_version = version
            return _loaded
        logger.info("Router model %s loaded in %.2f s", version, time.perf_counter() - started)
        _loaded, _loaded_version, _failed_version = model, version, None
        return _loaded


def classify_for_routing(subject: str, body: str) -> ClassifierDecision | None:
    """The model's decision for a message, or None when routing must use the rules."""
    model = active_classifier()
    if model is None:
        return None
    try:
        return model.predict(subject or "", body or "")
    except Exception:
        # Intake must never fail because of the model; the message goes to rules and triage.
        logger.exception(
            "Router model %s failed on a message; falling back to rules", model.version
        )
        return None


def model_store_reset() -> None:
    """Forget the loaded model (tests, and after an activation in this same process)."""
    global _loaded, _loaded_version, _failed_version
    with _lock:
        _loaded, _loaded_version, _failed_version = None, None, None


def explanation_for(decision: ClassifierDecision) -> str:
    """Why the model chose, in the agents' words: the words that weighed most and the other leads."""
    words = ", ".join(f"« {word} »" for word in decision.evidence) or "aucun mot saillant"
    others = ", ".join(f"{code} ({probability:.0%})" for code, probability in decision.top[1:])
    text = (
        f"Modèle {decision.model_version} : « {decision.code} » à {decision.probability:.0%} "
        f"(seuil {decision.threshold:.0%}). Mots qui ont pesé : {words}."
    )
    if others:
        text += f" Autres pistes : {others}."
    if not decision.auto:
        text = f"Confiance insuffisante ({decision.probability:.2f} < {decision.threshold:.2f}) : à trier. " + text
    return text

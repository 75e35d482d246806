"""The periodic retraining the worker runs: learn from agents' corrections, once a day at most."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from guichet.routing.models import LabelledExample, RouterModel
from guichet.routing.training import router_train

logger = logging.getLogger(__name__)


def router_retrain_if_due() -> bool:
    """Retrain when the newest model is older than the period and corrections arrived since."""
    newest = RouterModel.objects.order_by("-created_at").first()
    if newest is None:
        return False  # the first model is trained at installation (train_router --if-missing)
    if timezone.now() - newest.created_at < dt.timedelta(hours=settings.GUICHET_RETRAIN_HOURS):
        return False
    if not LabelledExample.objects.filter(source=LabelledExample.Source.CORRECTION, created_at__gt=newest.created_at).exists():
        return False
    outcome = router_train(actor="task:retrain")
    logger.info("Router retrained: %s (%s)", outcome.version, "promoted" if outcome.promoted else outcome.reason)
    return outcome.promoted

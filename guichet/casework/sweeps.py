"""Periodic safety nets run by the worker: nothing stays stuck if a task was lost."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from guichet.casework.inbound import MAX_PROCESSING_ATTEMPTS, submission_process
from guichet.intake.models import Submission


def submissions_retry_due(*, older_than: dt.timedelta | None = None, limit: int = 100) -> int:
    """Process submissions whose task never ran (worker killed, enqueue failed) or that failed."""
    if older_than is None:
        older_than = dt.timedelta(seconds=settings.GUICHET_SWEEP_AFTER_SECONDS)
    now = timezone.now()
    due = (
        Submission.objects.filter(status__in=[Submission.Status.PENDING, Submission.Status.FAILED], attempts__lt=MAX_PROCESSING_ATTEMPTS)
        .filter(Q(last_attempt_at__isnull=True, received_at__lte=now - older_than) | Q(last_attempt_at__lte=now - older_than))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for submission_id in list(due) if submission_process(submission_id=submission_id) is not None)

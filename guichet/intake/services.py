from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from guichet.core.audit import audit_log
from guichet.core.blobs import blob_put
from guichet.intake.inbound import InboundMessage
from guichet.intake.models import Submission

logger = logging.getLogger(__name__)


def submission_receive(*, inbound: InboundMessage) -> tuple[Submission, bool]:
    """Store the raw input durably, once; returns (submission, created).

    Nothing that can fail on content runs here: parsing, routing and the acknowledgement
    happen in `submission_process`, enqueued after commit, so a bug there never loses input.

    Once is enforced by the unique (channel, idempotency_key) constraint, not by a lookup
    first: a new input (nearly always the case) costs no extra query, and a redelivered one
    rolls its transaction back and returns the stored submission.
    """
    try:
        with transaction.atomic():
            raw = blob_put(data=inbound.raw)
            for extra in inbound.extra_blobs:
                blob_put(data=extra)
            submission = Submission.objects.create(
                channel=inbound.channel,
                idempotency_key=inbound.idempotency_key,
                received_at=inbound.received_at or timezone.now(),
                raw=raw,
                envelope=inbound.envelope,
            )
            audit_log(
                actor=f"channel:{inbound.channel}",
                verb="submission.receive",
                obj=submission,
                after={"size": len(inbound.raw), "key": inbound.idempotency_key[:255]},
            )
            transaction.on_commit(lambda: _enqueue_processing(submission.pk))
    except IntegrityError:
        # Already stored: an earlier delivery, or a concurrent one that committed first.
        existing = Submission.objects.filter(channel=inbound.channel, idempotency_key=inbound.idempotency_key).first()
        if existing is None:
            raise
        return existing, False
    return submission, True


def _enqueue_processing(submission_id: int) -> None:
    from guichet.casework.tasks import submission_process_task

    try:
        submission_process_task.enqueue(submission_id=submission_id)
    except Exception:
        # The submission is committed and pending; the worker's sweep will pick it up.
        logger.exception("Could not enqueue processing of submission %s", submission_id)

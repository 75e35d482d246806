"""Processing is idempotent and retried: a bug or a crash never loses a submission."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from django.db import connection

from guichet.casework import inbound
from guichet.casework.inbound import MAX_PROCESSING_ATTEMPTS, submission_process
from guichet.casework.models import Request
from guichet.casework.numbering import tracking_number_allocate
from guichet.casework.sweeps import submissions_retry_due
from guichet.intake.inbound import InboundMessage
from guichet.intake.models import Submission
from guichet.intake.services import submission_receive

pytestmark = pytest.mark.django_db


def _submission(key: str = "k1") -> Submission:
    raw = json.dumps({"name": "Claire", "email": "claire@example.org", "subject": "TER", "message": "Mon TER est en retard", "attachments": []}).encode()
    submission, created = submission_receive(inbound=InboundMessage(channel="web", idempotency_key=key, raw=raw))
    assert created
    return submission


def test_processing_twice_opens_one_request(directory: Any) -> None:
    submission = _submission()
    first = submission_process(submission_id=submission.pk)
    second = submission_process(submission_id=submission.pk)
    assert first == second and Request.objects.count() == 1


def test_a_failure_keeps_the_raw_and_the_sweep_retries(directory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    submission = _submission()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("router exploded")

    monkeypatch.setattr(inbound, "route", broken)
    assert submission_process(submission_id=submission.pk) is None
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED and "router exploded" in submission.last_error
    assert not Request.objects.exists()  # the half-done work was rolled back

    monkeypatch.undo()
    assert submissions_retry_due(older_than=dt.timedelta(0)) == 1
    submission.refresh_from_db()
    assert submission.status == Submission.Status.PROCESSED and submission.request is not None


def test_repeated_failures_end_in_quarantine(directory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    submission = _submission()
    monkeypatch.setattr(inbound, "route", lambda request: 1 / 0)
    for _ in range(MAX_PROCESSING_ATTEMPTS):
        submission_process(submission_id=submission.pk)
    submission.refresh_from_db()
    assert submission.status == Submission.Status.QUARANTINED
    assert bytes(submission.raw.data).startswith(b"{")


def test_tracking_numbers_follow_a_yearly_sequence(db: None) -> None:
    from django.utils import timezone

    jan = dt.datetime(2027, 1, 1, 12, tzinfo=dt.UTC)
    assert tracking_number_allocate(received_at=jan) == "ARA-2027-000001"
    assert tracking_number_allocate(received_at=jan) == "ARA-2027-000002"
    # 23:30 UTC on 31 December is already the new year in Paris
    assert tracking_number_allocate(received_at=dt.datetime(2027, 12, 31, 23, 30, tzinfo=dt.UTC)) == "ARA-2028-000001"
    assert timezone.is_aware(jan)


@pytest.mark.django_db(transaction=True)
def test_concurrent_allocations_never_share_a_number() -> None:
    if connection.vendor == "sqlite":
        # SQLite serialises writers anyway; the race this guards against is PostgreSQL's.
        numbers = [tracking_number_allocate(received_at=dt.datetime(2030, 5, 1, tzinfo=dt.UTC)) for _ in range(20)]
    else:
        numbers = []
        lock = threading.Lock()

        def allocate() -> None:
            value = tracking_number_allocate(received_at=dt.datetime(2030, 5, 1, tzinfo=dt.UTC))
            with lock:
                numbers.append(value)
            connection.close()

        threads = [threading.Thread(target=allocate) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(set(numbers)) == 20

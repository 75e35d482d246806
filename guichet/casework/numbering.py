from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from guichet.casework.models import TrackingCounter


def tracking_number_allocate(*, received_at: dt.datetime) -> str:
    """Next number of the year, like ARA-2026-000123.

    The counter row is locked until the caller's transaction ends, so concurrent intakes get
    distinct numbers and a rolled-back intake gives its number back rather than leaving a gap.
    """
    prefix = settings.GUICHET_TRACKING_PREFIX
    year = timezone.localtime(received_at).year
    with transaction.atomic():
        TrackingCounter.objects.get_or_create(prefix=prefix, year=year)
        counter = TrackingCounter.objects.select_for_update().get(prefix=prefix, year=year)
        counter.value += 1
        counter.save(update_fields=["value"])
    return f"{prefix}-{year}-{counter.value:06d}"

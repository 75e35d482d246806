from __future__ import annotations

import datetime as dt

import pytest

from guichet.core.deadlines import add_months


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (dt.date(2026, 11, 25), 2, dt.date(2027, 1, 25)),
        (dt.date(2026, 12, 31), 2, dt.date(2027, 2, 28)),  # clamped at month end
        (dt.date(2027, 12, 31), 2, dt.date(2028, 2, 29)),  # leap year
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2026, 3, 15), 12, dt.date(2027, 3, 15)),
    ],
)
def test_same_day_number_n_months_later(start: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(start, months) == expected

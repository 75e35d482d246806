from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InboundMessage:
    """What every channel hands to `submission_receive`: the raw input and its envelope."""

    channel: str
    idempotency_key: str
    raw: bytes
    envelope: dict[str, Any] = field(default_factory=dict)
    # Extra immutable pieces stored alongside the raw input (a web form's uploaded files).
    extra_blobs: tuple[bytes, ...] = ()
    received_at: dt.datetime | None = None

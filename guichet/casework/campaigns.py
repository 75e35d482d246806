"""Petitions, mass mailings and repeated messages: one need, N supporters, one answer."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
from django.db.models import Q
from django.utils import timezone

from guichet.casework.models import Campaign, Request
from guichet.core.audit import audit_log
from guichet.intake.channels.email.parsing import strip_quoted_reply
from guichet.routing.rules import normalize

MIN_WORDS = 25
MIN_SIMILARITY = 0.7
WINDOW = dt.timedelta(days=60)
SIGNATURE_SIZE = 32


def shingles(text: str) -> frozenset[str]:
    """Word trigrams of the new text (quotes and signatures removed); empty when too short."""
    words = normalize(strip_quoted_reply(text)).split()
    if len(words) < MIN_WORDS:
        return frozenset()
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


_rng = np.random.default_rng(20261125)
# Multiply-shift hashing (odd a, wrapping 64-bit arithmetic): one blake2b per trigram, then
# every seed of the signature in one numpy pass.
_A = _rng.integers(0, 2**63, size=SIGNATURE_SIZE, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_B = _rng.integers(0, 2**63, size=SIGNATURE_SIZE, dtype=np.uint64)


def minhashes(grams: frozenset[str]) -> tuple[int, ...]:
    values = np.fromiter(
        (int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "big") for gram in grams),
        dtype=np.uint64,
        count=len(grams),
    )
    with np.errstate(over="ignore"):
        hashed = (_A[:, None] * values[None, :] + _B[:, None]) >> np.uint64(1)
    # One bit dropped so the values fit PostgreSQL's signed bigint.
    return tuple(int(v) for v in hashed.min(axis=1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def estimated_similarity(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    """The share of equal MinHash values estimates the Jaccard similarity of the two texts."""
    if len(a) != len(b) or not a:
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def campaign_attach(*, request: Request) -> Campaign | None:
    """Fingerprint the request and group it with a recent near-identical one, if any."""
    grams = shingles(request.body_text)
    if not grams:
        return None
    values = minhashes(grams)
    request.minhash0, request.minhash1, request.minhash2, request.minhash3 = values[:4]
    request.minhash_signature = list(values)
    fields = ["minhash0", "minhash1", "minhash2", "minhash3", "minhash_signature"]
    candidates = (
        Request.objects.filter(Q(minhash0=values[0]) | Q(minhash1=values[1]) | Q(minhash2=values[2]) | Q(minhash3=values[3]))
        .filter(received_at__gte=request.received_at - WINDOW, minhash_signature__isnull=False)
        .exclude(pk=request.pk)
        .only("pk", "tracking_number", "subject", "campaign", "minhash_signature")
        .order_by("received_at")[:200]
    )
    twin = next((c for c in candidates if estimated_similarity(values, c.minhash_signature or []) >= MIN_SIMILARITY), None)
    if twin is not None:
        campaign = twin.campaign
        if campaign is None:
            campaign = Campaign.objects.create(title=(twin.subject or request.subject or "Campagne")[:500], created_at=timezone.now())
            twin.campaign = campaign
            twin.save(update_fields=["campaign"])
        request.campaign = campaign
        fields.append("campaign")
        audit_log(actor="router", verb="request.join_campaign", obj=request, after={"campaign": campaign.pk, "twin": twin.tracking_number})
    request.save(update_fields=fields)
    return request.campaign

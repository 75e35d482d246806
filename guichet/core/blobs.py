"""Content-addressed storage of immutable bytes, inside the database transaction."""

from __future__ import annotations

import hashlib

from guichet.core.models import Blob


def blob_put(*, data: bytes) -> Blob:
    """Store `data` once under its sha256; storing the same bytes again is a no-op.

    One `INSERT ... ON CONFLICT DO NOTHING` (SQLite: `INSERT OR IGNORE`): no SELECT first, no
    savepoint. Two transactions storing the same bytes at once cannot fail: the second waits
    for the first and inserts nothing. The bytes behind a digest are the same whoever stored
    them, so the object returned is as good as the stored row (only its `created_at` may be
    later than the row's).
    """
    digest = hashlib.sha256(data).hexdigest()
    blob = Blob(sha256=digest, size=len(data), data=data)
    Blob.objects.bulk_create([blob], ignore_conflicts=True)
    return blob


def blob_bytes(blob: Blob) -> bytes:
    # PostgreSQL returns memoryview for bytea, SQLite returns bytes.
    return bytes(blob.data)

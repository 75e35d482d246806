"""Content-addressed storage of immutable bytes, inside the database transaction."""

from __future__ import annotations

import hashlib

from guichet.core.models import Blob


def blob_put(*, data: bytes) -> Blob:
    digest = hashlib.sha256(data).hexdigest()
    blob, _ = Blob.objects.get_or_create(sha256=digest, defaults={"size": len(data), "data": data})
    return blob


def blob_bytes(blob: Blob) -> bytes:
    # PostgreSQL returns memoryview for bytea, SQLite returns bytes.
    return bytes(blob.data)

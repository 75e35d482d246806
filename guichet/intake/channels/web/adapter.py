from __future__ import annotations

import json
from typing import Any

from guichet.core.blobs import blob_bytes
from guichet.core.models import Blob
from guichet.intake.interpreted import InboundAttachment, Interpreted, SenderInfo


def interpret(raw: bytes, envelope: dict[str, Any]) -> Interpreted:
    payload: dict[str, Any] = json.loads(raw.decode("utf-8"))
    files = payload.get("attachments", [])
    blobs = {b.sha256: b for b in Blob.objects.filter(sha256__in=[f["sha256"] for f in files])}
    return Interpreted(
        sender=SenderInfo(
            name=str(payload.get("name", "")),
            email=(str(payload.get("email") or "").strip().lower() or None),
            phone=str(payload.get("phone", "")),
            postal_address=str(payload.get("postal_address", "")),
            kind=str(payload.get("kind", "person")),
            siret=str(payload.get("siret", "")),
        ),
        subject=str(payload.get("subject", "")),
        text=str(payload.get("message", "")),
        attachments=tuple(
            InboundAttachment(filename=f["filename"], declared_type=f.get("declared_type", ""), content=blob_bytes(blobs[f["sha256"]]))
            for f in files
            if f["sha256"] in blobs
        ),
    )


def preview(raw: bytes, envelope: dict[str, Any]) -> tuple[str, str, str]:
    payload: dict[str, Any] = json.loads(raw.decode("utf-8"))
    return str(payload.get("email") or payload.get("name") or "?"), str(payload.get("subject", "")), str(payload.get("message", ""))[:300]

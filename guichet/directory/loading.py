"""The default directory shipped with Guichet (services and outside authorities)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "data" / "default_directory.json"


def default_directory_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(DEFAULT_DIRECTORY.read_text(encoding="utf-8"))
    return entries


def load_directory(service_model: Any, authority_model: Any) -> int:
    """Create the missing default entries; an administrator's edits to existing ones win.

    Takes the model classes so the data migration can pass its historical models.
    """
    created = 0
    for entry in default_directory_entries():
        is_service = entry["kind"] == "service"
        fields = {
            "name": entry["name"],
            "description": entry["description"],
            "email": entry["email"],
            "phone": entry.get("phone", ""),
            "postal_address": entry.get("postal_address", ""),
            "answer_delay_days": entry.get("answer_delay_days", 30),
            "keywords": entry.get("keywords", []),
        }
        if is_service:
            fields["silence_means"] = entry.get("silence_means", "rejection")
        model = service_model if is_service else authority_model
        _, was_created = model.objects.get_or_create(code=entry["code"], defaults=fields)
        created += int(was_created)
    return created

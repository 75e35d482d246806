"""Writing to the append-only audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import models

from guichet.core.models import AuditEvent

Actor = AbstractBaseUser | AnonymousUser | str | None


def _actor_fields(actor: Actor) -> tuple[User | None, str]:
    if actor is None:
        return None, "system"
    if isinstance(actor, str):
        return None, actor
    if not isinstance(actor, User) or not actor.is_authenticated:
        return None, "anonymous"
    return actor, actor.get_username()


def audit_log(
    *,
    actor: Actor,
    verb: str,
    obj: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    user, label = _actor_fields(actor)
    return AuditEvent.objects.create(
        actor=user,
        actor_label=label,
        verb=verb,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        before=before or {},
        after=after or {},
    )

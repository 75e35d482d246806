from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from guichet.core.audit import audit_log
from guichet.core.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_audit_events_cannot_be_changed_or_deleted(directory: Any) -> None:
    event = audit_log(actor="tests", verb="directory.check", obj=directory["lycees"], after={"ok": True})
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(verb="forged")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()


def test_the_database_refuses_rewriting_history(directory: Any) -> None:
    event = audit_log(actor="tests", verb="directory.check", obj=directory["lycees"])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditevent SET verb = 'forged' WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).verb == "directory.check"


def test_actor_label_names_users_and_systems(agent_alice: Any, directory: Any) -> None:
    by_user = audit_log(actor=agent_alice, verb="x", obj=directory["lycees"])
    by_system = audit_log(actor=None, verb="x", obj=directory["lycees"])
    assert (by_user.actor, by_user.actor_label) == (agent_alice, "alice")
    assert (by_system.actor, by_system.actor_label) == (None, "system")

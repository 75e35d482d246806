from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from guichet.accounts.models import AgentProfile
from guichet.core.audit import Actor, audit_log
from guichet.directory.models import Service


@transaction.atomic
def agent_create(
    *,
    actor: Actor,
    username: str,
    email: str,
    password: str,
    services: Iterable[Service] = (),
    is_triage: bool = False,
    is_manager: bool = False,
    first_name: str = "",
    last_name: str = "",
    title: str = "",
) -> AbstractUser:
    user_model = get_user_model()
    user = user_model.objects.create_user(
        username=username, email=email, password=password, first_name=first_name, last_name=last_name
    )
    profile = AgentProfile.objects.create(user=user, is_triage=is_triage, is_manager=is_manager, title=title)
    service_list = list(services)
    profile.services.set(service_list)
    audit_log(
        actor=actor,
        verb="agent.create",
        obj=user,
        after={"username": username, "services": [s.code for s in service_list], "is_triage": is_triage},
    )
    return user  # type: ignore[return-value]

"""The one way a view, API or task obtains a request on behalf of an agent."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from guichet.casework.models import Request
from guichet.core.errors import NotFound


def agent_visibility(user: AbstractBaseUser | AnonymousUser) -> Q | None:
    """Filter of the requests a user may see; None means none at all."""
    if not user.is_authenticated or not user.is_active:
        return None
    if getattr(user, "is_superuser", False):
        return Q()
    profile = getattr(user, "agent", None)
    if profile is None:
        return None
    visible = Q(service__in=profile.services.all())
    if profile.is_triage:
        visible |= Q(service__isnull=True)
    return visible


def requests_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Request]:
    visible = agent_visibility(user)
    if visible is None:
        return Request.objects.none()
    return Request.objects.filter(visible)


def request_get_for_agent(*, agent: AbstractBaseUser | AnonymousUser, tracking_number: str) -> Request:
    # Outsiders get "not found", never "forbidden": a tracking number must not reveal existence.
    request = (
        requests_visible_to(agent)
        .select_related("requester", "service", "authority", "campaign")
        .filter(tracking_number=tracking_number)
        .first()
    )
    if request is None:
        raise NotFound("Demande introuvable.")
    return request

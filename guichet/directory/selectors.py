from __future__ import annotations

from django.db.models import QuerySet

from guichet.directory.models import Authority, Service


def service_list_active() -> QuerySet[Service]:
    return Service.objects.filter(is_active=True).order_by("name")


def authority_list_active() -> QuerySet[Authority]:
    return Authority.objects.filter(is_active=True).order_by("name")

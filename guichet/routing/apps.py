from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "guichet.routing"
    label = "routing"
    verbose_name = "Orientation des demandes"

from __future__ import annotations

from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "guichet.intake"
    label = "intake"
    verbose_name = "Réception des saisines"

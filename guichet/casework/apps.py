from __future__ import annotations

from django.apps import AppConfig


class CaseworkConfig(AppConfig):
    name = "guichet.casework"
    label = "casework"
    verbose_name = "Traitement des demandes"

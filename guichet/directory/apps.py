from __future__ import annotations

from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "guichet.directory"
    label = "directory"
    verbose_name = "Annuaire des services et autorités"

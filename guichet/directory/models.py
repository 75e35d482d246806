from __future__ import annotations

from django.db import models


class SilenceMeans(models.TextChoices):
    REJECTION = "rejection", "Rejet implicite"
    ACCEPTANCE = "acceptance", "Acceptation implicite"


class DirectoryEntry(models.Model):
    code = models.CharField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(help_text="Ce que traite ce service : sert au routage et à l'information des usagers.")
    email = models.EmailField()
    phone = models.CharField(max_length=40, blank=True)
    postal_address = models.CharField(max_length=300, blank=True)
    answer_delay_days = models.PositiveIntegerField(default=30, help_text="Délai de réponse visé, en jours.")
    keywords = models.JSONField(default=list, blank=True, help_text="Mots-clés du routage par règles (minuscules, sans accents).")
    is_active = models.BooleanField(default=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Service(DirectoryEntry):
    """A service of the Région that handles requests itself."""

    silence_means = models.CharField(max_length=12, choices=SilenceMeans.choices, default=SilenceMeans.REJECTION)

    class Meta(DirectoryEntry.Meta):
        verbose_name = "service"


class Authority(DirectoryEntry):
    """An outside authority to which requests are transmitted (CRPA L114-2)."""

    class Meta(DirectoryEntry.Meta):
        verbose_name = "autorité compétente"
        verbose_name_plural = "autorités compétentes"

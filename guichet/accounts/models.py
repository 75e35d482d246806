from __future__ import annotations

from django.conf import settings
from django.db import models


class AgentProfile(models.Model):
    """What an agent may see: the requests of their services, and the triage queue if on triage."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent")
    services = models.ManyToManyField("directory.Service", blank=True, related_name="agents")
    is_triage = models.BooleanField("équipe de tri", default=False)
    is_manager = models.BooleanField("encadrant (visa)", default=False)
    title = models.CharField("fonction", max_length=200, blank=True)

    class Meta:
        verbose_name = "profil agent"

    def __str__(self) -> str:
        return self.user.get_username()

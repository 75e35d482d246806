from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class RoutingRecord(models.Model):
    """Every routing decision, automatic or human, kept for audit and for retraining."""

    class Source(models.TextChoices):
        AUTOMATIC = "automatic", "Automatique"
        HUMAN = "human", "Manuel"

    request = models.ForeignKey("casework.Request", on_delete=models.CASCADE, related_name="routing_records")
    source = models.CharField(max_length=10, choices=Source.choices)
    service = models.ForeignKey("directory.Service", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    authority = models.ForeignKey("directory.Authority", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    confidence = models.FloatField(default=0.0)
    explanation = models.TextField(blank=True)
    model_version = models.CharField(max_length=60, blank=True)
    applied = models.BooleanField(default=False, help_text="Vrai si la décision a été appliquée sans intervention humaine.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        target = self.service or self.authority or "tri"
        return f"{self.request} → {target} ({self.confidence:.2f})"

    @property
    def target_code(self) -> str | None:
        target = self.service or self.authority
        return target.code if target else None

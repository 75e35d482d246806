from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    WEB = "web", _("Formulaire web")
    EMAIL = "email", _("Courriel")
    API = "api", _("API")
    PAPER = "paper", _("Courrier papier")


class Requester(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person", _("Particulier")
        COMPANY = "company", _("Entreprise")
        ASSOCIATION = "association", _("Association")

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.PERSON)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    phone = models.CharField(max_length=40, blank=True)
    postal_address = models.TextField(blank=True)
    siret = models.CharField(max_length=14, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("usager")

    def __str__(self) -> str:
        return self.name or self.email or f"usager {self.pk}"


class Submission(models.Model):
    """One raw inbound artefact exactly as received; its raw fields are never modified.

    Only the processing fields (status, attempts, error, request) change afterwards.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("À traiter")
        PROCESSED = "processed", _("Traitée")
        FAILED = "failed", _("En erreur (sera retentée)")
        QUARANTINED = "quarantined", _("En quarantaine")

    channel = models.CharField(max_length=10, choices=Channel.choices)
    idempotency_key = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    raw = models.ForeignKey("core.Blob", on_delete=models.PROTECT, related_name="+")
    envelope = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    quarantine_reason = models.CharField(max_length=300, blank=True)
    released_at = models.DateTimeField(null=True, blank=True, help_text="Sortie de quarantaine par un agent.")
    processed_at = models.DateTimeField(null=True, blank=True)
    request = models.ForeignKey("casework.Request", null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions")

    class Meta:
        verbose_name = _("saisine")
        constraints = [
            models.UniqueConstraint(fields=["channel", "idempotency_key"], name="submission_unique_channel_key"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.received_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from guichet.intake.models import Channel

if TYPE_CHECKING:
    from guichet.routing.models import RoutingRecord


def new_public_id() -> str:
    # 128 bits of randomness: the tracking link is the only key to a request's public page.
    return secrets.token_urlsafe(16)


def new_reply_token() -> str:
    # Lowercase letters and digits only: it travels in an email local part (contact+<token>@...).
    return secrets.token_hex(10)


class RequestStatus(models.TextChoices):
    RECEIVED = "received", _("Reçue")
    ROUTED = "routed", _("Orientée vers un service")
    IN_PROGRESS = "in_progress", _("En cours de traitement")
    ANSWERED = "answered", _("Répondue")
    CLOSED = "closed", _("Close")
    FORWARDED = "forwarded", _("Transmise à l'autorité compétente")
    REJECTED_SPAM = "rejected_spam", _("Rejetée (indésirable)")


class Priority(models.TextChoices):
    NORMAL = "normal", _("Normale")
    HIGH = "high", _("Haute")


class TrackingCounter(models.Model):
    """Per-year sequence of tracking numbers; numbers are never reused."""

    prefix = models.CharField(max_length=20)
    year = models.PositiveIntegerField()
    value = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prefix", "year"], name="tracking_counter_unique")]

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year}: {self.value}"


class Campaign(models.Model):
    """Near-identical messages grouped as one need: a petition (many senders) or a repeat (one)."""

    title = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "campagne"

    def __str__(self) -> str:
        return self.title


class Request(models.Model):
    tracking_number = models.CharField(max_length=40, unique=True)
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    reply_token = models.CharField(max_length=32, unique=True, default=new_reply_token)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="linked_requests", help_text="Demande d'origine (réponse tardive à une demande close, sous-demande).")
    requester = models.ForeignKey("intake.Requester", on_delete=models.PROTECT, related_name="requests")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    subject = models.CharField(max_length=500, blank=True)
    body_text = models.TextField(blank=True)
    language = models.CharField(max_length=8, default="fr")
    status = models.CharField(max_length=15, choices=RequestStatus.choices, default=RequestStatus.RECEIVED, db_index=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    service = models.ForeignKey("directory.Service", null=True, blank=True, on_delete=models.PROTECT, related_name="requests")
    authority = models.ForeignKey("directory.Authority", null=True, blank=True, on_delete=models.PROTECT, related_name="requests")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    # Four MinHash values of the text's word trigrams: texts that overlap a lot share at least
    # one with near certainty, so near-duplicates are found with indexed equality lookups.
    minhash0 = models.BigIntegerField(null=True, blank=True, db_index=True)
    minhash1 = models.BigIntegerField(null=True, blank=True, db_index=True)
    minhash2 = models.BigIntegerField(null=True, blank=True, db_index=True)
    minhash3 = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The full MinHash signature: similarity is estimated from it, without re-reading texts.
    minhash_signature = models.JSONField(null=True, blank=True)
    legal_deadline = models.DateField(null=True, blank=True)
    silence_means = models.CharField(max_length=12, default="rejection")
    answered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("demande")
        indexes = [models.Index(fields=["service", "status"])]

    def __str__(self) -> str:
        return self.tracking_number

    def is_overdue(self, today: dt.date | None = None) -> bool:
        if self.legal_deadline is None or self.status in {RequestStatus.ANSWERED, RequestStatus.CLOSED, RequestStatus.FORWARDED}:
            return False
        return (today or timezone.localdate()) > self.legal_deadline

    def latest_routing(self) -> RoutingRecord | None:
        # Iterates the prefetched records, so a queue page costs no query per row.
        records = list(self.routing_records.all())
        return records[-1] if records else None

    def tracking_url(self) -> str:
        return f"{settings.GUICHET_PUBLIC_URL}/suivi/{self.public_id}"


class SenderVerification(models.TextChoices):
    VERIFIED = "verified", _("Expéditeur vérifié")
    UNVERIFIED = "unverified", _("Expéditeur non vérifié")
    FAILED = "failed", _("Vérification échouée")
    UNKNOWN = "unknown", _("Non applicable")


class Message(models.Model):
    """One item of a request's thread; internal notes never leave the back office."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Reçu")
        OUTBOUND = "outbound", _("Envoyé")
        INTERNAL = "internal", _("Note interne")

    class Kind(models.TextChoices):
        CITIZEN = "citizen", _("Message de l'usager")
        ACKNOWLEDGEMENT = "acknowledgement", _("Accusé de réception")
        REPLY = "reply", _("Réponse")
        FORWARD_NOTICE = "forward_notice", _("Avis de transmission")
        NOTE = "note", _("Note interne")

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    from_address = models.CharField(max_length=254, blank=True)
    to_address = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    body_text = models.TextField(blank=True)
    # Raw citizen HTML, kept as received; pages only ever show it through sanitize_citizen_html.
    body_html = models.TextField(blank=True)
    message_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    submission = models.ForeignKey("intake.Submission", null=True, blank=True, on_delete=models.PROTECT, related_name="messages")
    outgoing_mail = models.ForeignKey("core.OutgoingMail", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sender_verification = models.CharField(max_length=12, choices=SenderVerification.choices, default=SenderVerification.UNKNOWN)
    authentication_results = models.TextField(blank=True, help_text="SPF, DKIM et DMARC tels que constatés à la réception.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.request} {self.get_kind_display()} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_public(self) -> bool:
        return self.direction != self.Direction.INTERNAL


class AttachmentStatus(models.TextChoices):
    CLEAN = "clean", _("Disponible")
    QUARANTINED = "quarantined", _("Bloquée (type dangereux)")
    INFECTED = "infected", _("Bloquée (virus détecté)")


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    blob = models.ForeignKey("core.Blob", on_delete=models.PROTECT, related_name="+")
    filename = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=120, help_text="Type détecté d'après le contenu.")
    declared_type = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=12, choices=AttachmentStatus.choices, default=AttachmentStatus.CLEAN)
    scan_result = models.CharField(max_length=300, blank=True, help_text="Pourquoi la pièce est bloquée (type dangereux, virus détecté…).")

    def __str__(self) -> str:
        return self.filename

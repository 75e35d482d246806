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
    rule = models.ForeignKey("routing.RoutingRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="records")
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


class RouterModel(models.Model):
    """One trained version of the routing classifier; exactly one is active at a time."""

    version = models.CharField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    is_active = models.BooleanField(default=False)
    # A zlib-compressed pickle of guichet.routing.classifier.RouterClassifier (a few MB),
    # kept in the database so every web and worker process sees the same promoted model.
    payload = models.BinaryField()
    metrics = models.JSONField(default=dict, blank=True)
    trained_on = models.PositiveIntegerField(
        default=0, help_text="Nombre d'exemples d'entraînement."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "modèle d'orientation"
        verbose_name_plural = "modèles d'orientation"
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="routing_one_active_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version}{' (actif)' if self.is_active else ''}"


class LabelledExample(models.Model):
    """A message with the code it should have been routed to, for training the router."""

    class Source(models.TextChoices):
        SEED = "seed", "Corpus livré"
        IMPORT = "import", "Import"
        CORRECTION = "correction", "Correction d'un agent"

    subject = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    code = models.CharField(max_length=60)
    source = models.CharField(max_length=12, choices=Source.choices)
    request = models.ForeignKey(
        "casework.Request", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "exemple étiqueté"
        verbose_name_plural = "exemples étiquetés"
        indexes = [models.Index(fields=["source", "created_at"])]

    def __str__(self) -> str:
        return f"{self.code}: {self.subject[:60]}"


class RoutingRule(models.Model):
    """An exact rule an administrator writes; rules win over the model."""

    class Kind(models.TextChoices):
        SENDER_DOMAIN = "sender_domain", "Domaine de l'expéditeur"
        REFERENCE = "reference", "Référence (expression régulière)"
        PHRASE = "phrase", "Expression dans le texte"

    name = models.CharField("nom", max_length=200)
    kind = models.CharField("type", max_length=20, choices=Kind.choices)
    pattern = models.CharField(
        "motif", max_length=300,
        help_text="Domaine (ex. ac-lyon.fr), expression régulière (ex. DOS-\\d{6}) ou expression (ex. carte Pass'Région).",
    )
    service = models.ForeignKey("directory.Service", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    authority = models.ForeignKey("directory.Authority", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    priority = models.PositiveIntegerField("priorité", default=100, help_text="La plus petite valeur est essayée en premier.")
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = "règle d'orientation"
        verbose_name_plural = "règles d'orientation"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(service__isnull=False, authority__isnull=True) | models.Q(service__isnull=True, authority__isnull=False),
                name="routing_rule_one_target",
            )
        ]

    def __str__(self) -> str:
        return self.name

from __future__ import annotations

from django.contrib import admin

from guichet.intake.models import Requester, Submission


@admin.register(Requester)
class RequesterAdmin(admin.ModelAdmin[Requester]):
    list_display = ["name", "email", "kind", "created_at"]
    search_fields = ["name", "email", "siret"]


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin[Submission]):
    list_display = ["id", "channel", "received_at", "status", "attempts", "request"]
    list_filter = ["channel", "status"]
    readonly_fields = ["channel", "idempotency_key", "received_at", "raw", "envelope"]

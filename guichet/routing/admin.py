from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from guichet.routing.admin_rules import pattern_error
from guichet.routing.models import RoutingRule


class RoutingRuleForm(forms.ModelForm[RoutingRule]):
    class Meta:
        model = RoutingRule
        fields = ["name", "kind", "pattern", "service", "authority", "priority", "is_active"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        error = pattern_error(cleaned.get("kind", ""), cleaned.get("pattern", ""))
        if error:
            self.add_error("pattern", error)
        if bool(cleaned.get("service")) == bool(cleaned.get("authority")):
            raise forms.ValidationError("Choisissez soit un service, soit une autorité compétente.")
        return cleaned


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin[RoutingRule]):
    form = RoutingRuleForm
    list_display = ["name", "kind", "pattern", "target", "priority", "is_active", "matched_last_month"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "pattern"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoutingRule]:
        since = timezone.now() - dt.timedelta(days=30)
        return super().get_queryset(request).select_related("service", "authority").annotate(
            recent=Count("records", filter=Q(records__created_at__gte=since))
        )

    @admin.display(description="cible")
    def target(self, rule: RoutingRule) -> str:
        return str(rule.service or rule.authority)

    @admin.display(description="demandes ces 30 derniers jours", ordering="recent")
    def matched_last_month(self, rule: RoutingRule) -> int:
        return int(getattr(rule, "recent", 0))

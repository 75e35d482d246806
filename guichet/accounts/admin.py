from __future__ import annotations

from django.contrib import admin

from guichet.accounts.models import AgentProfile


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin[AgentProfile]):
    list_display = ["user", "is_triage", "is_manager", "title"]
    filter_horizontal = ["services"]
    search_fields = ["user__username", "user__email"]

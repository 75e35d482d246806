from __future__ import annotations

from django.contrib import admin

from guichet.directory.models import Authority, Service


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin[Service]):
    list_display = ["code", "name", "email", "answer_delay_days", "silence_means", "is_active"]
    search_fields = ["code", "name", "description"]
    list_filter = ["is_active", "silence_means"]


@admin.register(Authority)
class AuthorityAdmin(admin.ModelAdmin[Authority]):
    list_display = ["code", "name", "email", "is_active"]
    search_fields = ["code", "name", "description"]

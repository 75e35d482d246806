from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("agent/", include("guichet.casework.urls_agent")),
    path("", include("guichet.intake.channels.web.urls")),
    path("", include("guichet.casework.urls_public")),
]

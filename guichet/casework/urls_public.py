from __future__ import annotations

from django.urls import path

from guichet.casework import views_public

app_name = "public"
urlpatterns = [
    path("suivi/<str:public_id>/", views_public.tracking, name="tracking"),
    path("suivi/<str:public_id>", views_public.tracking),
]

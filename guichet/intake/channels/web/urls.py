from __future__ import annotations

from django.urls import path

from guichet.intake.channels.web import views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("accessibilite/", views.accessibility, name="accessibility"),
    path("demande/", views.request_form, name="request_form"),
    path("demande/envoyer/", views.request_send, name="request_send"),
    path("demande/enregistree/<str:form_token>/", views.request_registered, name="request_registered"),
    path("demande/confirmation/<str:public_id>/", views.request_confirmation, name="request_confirmation"),
]

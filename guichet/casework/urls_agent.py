from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from guichet.casework import views_agent

app_name = "agent"
urlpatterns = [
    path("connexion/", auth_views.LoginView.as_view(template_name="agent/login.html", redirect_authenticated_user=True), name="login"),
    path("deconnexion/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views_agent.queue, name="queue"),
    path("quarantaine/", views_agent.quarantine, name="quarantine"),
    path("quarantaine/<int:submission_id>/liberer/", views_agent.quarantine_release, name="quarantine_release"),
    path("demandes/<str:tracking_number>/", views_agent.request_detail, name="request_detail"),
    path("demandes/<str:tracking_number>/pieces/<int:attachment_id>/", views_agent.attachment_download, name="attachment"),
    path("demandes/<str:tracking_number>/pieces/<int:attachment_id>/apercu/", views_agent.attachment_preview, name="attachment_preview"),
    path("demandes/<str:tracking_number>/<str:action>/", views_agent.request_action, name="request_action"),
]

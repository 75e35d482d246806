from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from guichet.accounts.services import agent_create
from guichet.directory.models import Service


class Command(BaseCommand):
    help = "Create a demo agent per service, a triage agent and an administrator (passwords printed once)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        created: list[tuple[str, str, str]] = []
        if not user_model.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username="admin", email="admin@guichet.localhost", password=password)
            created.append(("admin", password, "administrateur (tous droits)"))
        if not user_model.objects.filter(username="tri").exists():
            password = secrets.token_urlsafe(12)
            agent_create(actor="bootstrap_demo", username="tri", email="tri@guichet.localhost", password=password, is_triage=True, title="Équipe de tri")
            created.append(("tri", password, "équipe de tri"))
        for service in Service.objects.order_by("code"):
            username = f"agent.{service.code}"
            if user_model.objects.filter(username=username).exists():
                continue
            password = secrets.token_urlsafe(12)
            agent_create(actor="bootstrap_demo", username=username, email=f"{username}@guichet.localhost", password=password, services=[service], title=f"Agent — {service.name}")
            created.append((username, password, service.name))
        if not created:
            self.stdout.write("Comptes de démonstration déjà créés (mots de passe affichés lors de la première création ; `guichet changepassword NOM` pour en changer).")
            return
        self.stdout.write(self.style.WARNING("Comptes créés — notez ces mots de passe, ils ne seront plus affichés :"))
        for username, password, role in created:
            self.stdout.write(f"  {username:<32} {password:<20} {role}")

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email

from guichet.intake.models import Requester

_SIRET = re.compile(r"^\d{14}$")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


class RequestForm(forms.Form):
    """The public form. Checks are for the citizen's benefit; the service layer re-checks limits."""

    kind = forms.ChoiceField(label="Vous écrivez en tant que", choices=Requester.Kind.choices, initial=Requester.Kind.PERSON, widget=forms.RadioSelect)
    name = forms.CharField(label="Nom et prénom, ou raison sociale", max_length=200, error_messages={"required": "Indiquez votre nom, ou celui de votre entreprise ou association."})
    email = forms.CharField(label="Adresse électronique", max_length=254, required=False, help_text="Format attendu : nom@exemple.fr. Nous y envoyons l'accusé de réception et la réponse.")
    phone = forms.CharField(label="Téléphone", max_length=40, required=False, help_text="Facultatif. Format attendu : 04 72 00 00 00.")
    postal_address = forms.CharField(label="Adresse postale", required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3}), help_text="Obligatoire si vous n'indiquez pas d'adresse électronique.")
    siret = forms.CharField(label="Numéro SIRET", max_length=17, required=False, help_text="Pour une entreprise : 14 chiffres.")
    subject = forms.CharField(label="Objet de votre demande", max_length=200, error_messages={"required": "Indiquez l'objet de votre demande en quelques mots, par exemple « Retard du car scolaire »."})
    message = forms.CharField(label="Votre message", max_length=20000, widget=forms.Textarea(attrs={"rows": 10}), help_text="20 000 caractères au plus.", error_messages={"required": "Écrivez votre message."})
    attachments = MultipleFileField(label="Pièces jointes", required=False)

    def __init__(self, *args: Any, max_files: int, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.fields["attachments"].help_text = (
            f"Facultatif. {max_files} fichiers au plus, {max_bytes // (1024 * 1024)} Mo au total (PDF, images, documents)."
        )

    def clean_email(self) -> str:
        value: str = self.cleaned_data["email"].strip()
        if value:
            try:
                validate_email(value)
            except forms.ValidationError:
                raise forms.ValidationError("Cette adresse électronique n'est pas valide. Exemple : nom@exemple.fr.") from None
        return value.lower()

    def clean_siret(self) -> str:
        value = re.sub(r"\s", "", self.cleaned_data["siret"])
        if value and not _SIRET.match(value):
            raise forms.ValidationError("Le numéro SIRET compte 14 chiffres, par exemple 123 456 789 00012.")
        return value

    def clean_message(self) -> str:
        value: str = self.cleaned_data["message"].replace("\x00", "").strip()
        if not value:
            raise forms.ValidationError("Écrivez votre message.")
        return value

    def clean_attachments(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data["attachments"]
        if len(files) > self.max_files:
            raise forms.ValidationError(f"Vous pouvez joindre {self.max_files} fichiers au plus ; vous en avez choisi {len(files)}.")
        total = sum(f.size or 0 for f in files)
        if total > self.max_bytes:
            raise forms.ValidationError(
                f"Les pièces jointes pèsent {total / (1024 * 1024):.1f} Mo : la limite est de {self.max_bytes // (1024 * 1024)} Mo au total. "
                "Réduisez-les ou envoyez-les en plusieurs fois."
            )
        return files

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("email") and not cleaned.get("postal_address", "").strip() and "email" not in self.errors:
            self.add_error("email", "Indiquez une adresse électronique ou une adresse postale pour recevoir la réponse.")
        return cleaned

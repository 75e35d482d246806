from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

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

    kind = forms.ChoiceField(label=_("Vous écrivez en tant que"), choices=Requester.Kind.choices, initial=Requester.Kind.PERSON, widget=forms.RadioSelect)
    name = forms.CharField(label=_("Nom et prénom, ou raison sociale"), max_length=200, error_messages={"required": _("Indiquez votre nom, ou celui de votre entreprise ou association.")})
    email = forms.CharField(label=_("Adresse électronique"), max_length=254, required=False, help_text=_("Format attendu : nom@exemple.fr. Nous y envoyons l'accusé de réception et la réponse."))
    phone = forms.CharField(label=_("Téléphone"), max_length=40, required=False, help_text=_("Facultatif. Format attendu : 04 72 00 00 00."))
    postal_address = forms.CharField(label=_("Adresse postale"), required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3}), help_text=_("Obligatoire si vous n'indiquez pas d'adresse électronique."))
    siret = forms.CharField(label=_("Numéro SIRET"), max_length=17, required=False, help_text=_("Pour une entreprise : 14 chiffres."))
    subject = forms.CharField(label=_("Objet de votre demande"), max_length=200, error_messages={"required": _("Indiquez l'objet de votre demande en quelques mots, par exemple « Retard du car scolaire ».")})
    message = forms.CharField(label=_("Votre message"), max_length=20000, widget=forms.Textarea(attrs={"rows": 10}), help_text=_("20 000 caractères au plus."), error_messages={"required": _("Écrivez votre message.")})
    attachments = MultipleFileField(label=_("Pièces jointes"), required=False)

    def __init__(self, *args: Any, max_files: int, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.fields["attachments"].help_text = _("Facultatif. %(max_files)d fichiers au plus, %(max_mb)d Mo au total (PDF, images, documents).") % {
            "max_files": max_files,
            "max_mb": max_bytes // (1024 * 1024),
        }

    def clean_email(self) -> str:
        value: str = self.cleaned_data["email"].strip()
        if value:
            try:
                validate_email(value)
            except forms.ValidationError:
                raise forms.ValidationError(_("Cette adresse électronique n'est pas valide. Exemple : nom@exemple.fr.")) from None
        return value.lower()

    def clean_siret(self) -> str:
        value = re.sub(r"\s", "", self.cleaned_data["siret"])
        if value and not _SIRET.match(value):
            raise forms.ValidationError(_("Le numéro SIRET compte 14 chiffres, par exemple 123 456 789 00012."))
        return value

    def clean_message(self) -> str:
        value: str = self.cleaned_data["message"].replace("\x00", "").strip()
        if not value:
            raise forms.ValidationError(_("Écrivez votre message."))
        return value

    def clean_attachments(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data["attachments"]
        if len(files) > self.max_files:
            raise forms.ValidationError(
                _("Vous pouvez joindre %(max_files)d fichiers au plus ; vous en avez choisi %(count)d.") % {"max_files": self.max_files, "count": len(files)}
            )
        total = sum(f.size or 0 for f in files)
        if total > self.max_bytes:
            raise forms.ValidationError(
                _(
                    "Les pièces jointes pèsent %(size).1f Mo : la limite est de %(max_mb)d Mo au total. "
                    "Réduisez-les ou envoyez-les en plusieurs fois."
                )
                % {"size": total / (1024 * 1024), "max_mb": self.max_bytes // (1024 * 1024)}
            )
        return files

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("email") and not cleaned.get("postal_address", "").strip() and "email" not in self.errors:
            self.add_error("email", _("Indiquez une adresse électronique ou une adresse postale pour recevoir la réponse."))
        return cleaned

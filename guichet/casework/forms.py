from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from guichet.casework.models import RequestStatus
from guichet.casework.status import AGENT_CHOOSABLE
from guichet.directory.selectors import authority_list_active, service_list_active


class ReplyForm(forms.Form):
    body = forms.CharField(label=_("Réponse à l'usager"), widget=forms.Textarea(attrs={"rows": 8}), max_length=50000)


class NoteForm(forms.Form):
    body = forms.CharField(label=_("Note interne (jamais visible par l'usager)"), widget=forms.Textarea(attrs={"rows": 3}), max_length=10000)


class StatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Nouveau statut"), choices=[(s.value, s.label) for s in AGENT_CHOOSABLE])


class ReassignForm(forms.Form):
    service = forms.ModelChoiceField(label=_("Service"), queryset=service_list_active(), to_field_name="code")
    reason = forms.CharField(label=_("Motif"), max_length=500)


class MisroutingForm(forms.Form):
    reason = forms.CharField(label=_("Pourquoi ce n'est pas pour votre service (facultatif)"), max_length=500, required=False)


class ForwardForm(forms.Form):
    authority = forms.ModelChoiceField(label=_("Autorité compétente"), queryset=authority_list_active(), to_field_name="code")
    reason = forms.CharField(label=_("Motif de la transmission"), max_length=500)


__all__ = ["ForwardForm", "NoteForm", "ReassignForm", "ReplyForm", "RequestStatus", "StatusForm"]

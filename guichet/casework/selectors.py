from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Count, IntegerField, Prefetch, QuerySet, Value, When

from guichet.casework.access import requests_visible_to
from guichet.casework.models import Attachment, Message, Priority, Request, RequestStatus
from guichet.core.blobs import blob_bytes
from guichet.intake.channels.registry import adapter_for
from guichet.intake.models import Submission

OPEN_STATUSES = (RequestStatus.RECEIVED, RequestStatus.ROUTED, RequestStatus.IN_PROGRESS)


def _queue_order(queryset: QuerySet[Request]) -> QuerySet[Request]:
    urgent_first = Case(When(priority=Priority.HIGH, then=Value(0)), default=Value(1), output_field=IntegerField())
    return queryset.annotate(urgency=urgent_first).order_by("urgency", "received_at")


def request_queue_for_agent(*, agent: AbstractBaseUser, statuses: tuple[str, ...] = OPEN_STATUSES) -> QuerySet[Request]:
    visible = requests_visible_to(agent).filter(service__isnull=False, status__in=statuses)
    return _queue_order(visible.select_related("service", "requester"))


def triage_queue_for_agent(*, agent: AbstractBaseUser) -> QuerySet[Request]:
    visible = requests_visible_to(agent).filter(service__isnull=True, status=RequestStatus.RECEIVED)
    return _queue_order(visible.select_related("requester").prefetch_related("routing_records__authority", "routing_records__service"))


def request_thread(*, request: Request, include_internal: bool) -> QuerySet[Message]:
    messages = request.messages.select_related("author").prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("pk")))
    if not include_internal:
        messages = messages.exclude(direction=Message.Direction.INTERNAL)
    return messages.order_by("created_at", "pk")


def request_get_public(*, public_id: str) -> Request | None:
    return Request.objects.select_related("service", "authority").filter(public_id=public_id).first()


@dataclass(frozen=True)
class QuarantinedItem:
    submission: Submission
    sender: str
    subject: str
    excerpt: str


def quarantined_submissions(*, limit: int = 200) -> list[QuarantinedItem]:
    """Quarantined input with a readable preview; parsing is safe, it never raises."""
    items = []
    for submission in Submission.objects.filter(status=Submission.Status.QUARANTINED).select_related("raw").order_by("-received_at")[:limit]:
        sender, subject, excerpt = adapter_for(submission.channel).preview(blob_bytes(submission.raw), submission.envelope)
        items.append(QuarantinedItem(submission, sender, subject, excerpt))
    return items


@dataclass(frozen=True)
class CampaignSummary:
    title: str
    request_count: int
    supporters: int
    others: list[Request]


def campaign_summary(*, request: Request) -> CampaignSummary | None:
    """The campaign a request belongs to: one need, how many requests and distinct senders."""
    if request.campaign_id is None or request.campaign is None:
        return None
    members = Request.objects.filter(campaign_id=request.campaign_id)
    counts = members.aggregate(requests=Count("pk"), supporters=Count("requester", distinct=True))
    others = list(members.exclude(pk=request.pk).select_related("requester").order_by("received_at")[:20])
    return CampaignSummary(request.campaign.title, counts["requests"], counts["supporters"], others)

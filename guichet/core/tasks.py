from __future__ import annotations

from django_tasks import task

from guichet.core.outbox import outbox_deliver


@task()
def outbox_deliver_task(*, mail_id: int) -> bool:
    return outbox_deliver(mail_id=mail_id)

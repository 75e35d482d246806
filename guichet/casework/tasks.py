from __future__ import annotations

from django_tasks import task

from guichet.casework.inbound import submission_process


@task()
def submission_process_task(*, submission_id: int) -> int | None:
    return submission_process(submission_id=submission_id)

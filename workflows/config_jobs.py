"""Configuration files imported by a worker: a file with more than CONFIG_IMPORT_SYNC_MAX_ENTRIES webhooks and
rules is kept as a ConfigImportJob and imported by the task ``workflows.config_import``, so that no web thread
waits for it; the REST API answers 202 with the job and shows how it went.

The import itself is workflows.config_io's (config_import_job_run, which the task calls); this module only
submits and reads jobs, so that the task module never imports what imports it.
"""
import datetime
import json
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from crm.models import Organization
from dispatcher.config_io.imports import config_check_header
from dispatcher.crypto import encrypt as secret_encrypt
from workflows.config_io import JOB_STOPPED, JOB_TIME_LIMIT_SECONDS
from workflows.models import ConfigImportJob, ImportStatus
from workflows.tasks import config_import

SECTIONS_COUNTED = ("retry_policies", "webhooks", "workflow_rules")


def config_entries(data: Any) -> int:
    """Webhooks and rules in a file: what an import's time grows with."""
    if not isinstance(data, dict):
        return 0
    return sum(len(data[key]) for key in ("webhooks", "workflow_rules") if isinstance(data.get(key), list))


def config_import_is_large(data: Any) -> bool:
    """Whether a file goes to a worker rather than being imported while the client's request waits."""
    return config_entries(data) > settings.CONFIG_IMPORT_SYNC_MAX_ENTRIES


def config_import_job_submit(*, data: Any, dry_run: bool, organization: Organization) -> ConfigImportJob:
    """Keep the file (encrypted: it may hold secrets) and have a worker import it once this transaction
    commits. The header is checked now, so a file that is no configuration at all is refused at once."""
    config_check_header(data)
    job = ConfigImportJob.objects.create(
        public_id=uuid.uuid4(), organization=organization, dry_run=dry_run, entries=config_entries(data),
        file=secret_encrypt(json.dumps(data, ensure_ascii=False)))
    transaction.on_commit(lambda: config_import.delay(job.pk))
    return job


def config_import_job_data(job: ConfigImportJob, *, now: datetime.datetime | None = None) -> dict[str, Any]:
    """The job as the REST API shows it: status, counts, the report once done, every problem once failed."""
    status, problems = job.status, list(job.problems)
    stale = (now or timezone.now()) - datetime.timedelta(seconds=JOB_TIME_LIMIT_SECONDS)
    if status == ImportStatus.RUNNING and job.started_at is not None and job.started_at < stale:
        status, problems = ImportStatus.FAILED, [JOB_STOPPED]
    report = job.report if status == ImportStatus.DONE else None
    counts = None if report is None else {
        section: {outcome: len(report[section][outcome]) for outcome in ("created", "updated", "unchanged")}
        for section in SECTIONS_COUNTED}
    return {"id": str(job.public_id), "status": status, "dry_run": job.dry_run, "entries": job.entries,
            "counts": counts, "report": report, "problems": problems, "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at}

"""REST API of workflow rules (read-only) and of the whole configuration (the import_config and
export_config commands over HTTP, for deploying configuration from CI), as a django-ninja router."""
import datetime
from typing import Any

from django.urls import reverse
from ninja import Body, Query, Router, Schema

from crm.api.auth import ApiRequest, key_auth
from crm.api.envelopes import Answer, Page
from crm.api.errors import COMMON_ERRORS, POST_ERRORS, ApiError
from crm.api.idempotency import idempotent
from crm.api.lookup import owned_or_404
from crm.api.pagination import Paging, page
from crm.models import ApiScope
from dispatcher.config_io.report import ConfigError
from workflows.config_io import config_export_all, config_import_all, report_data, rule_export, rules_loaded
from workflows.config_jobs import config_import_is_large, config_import_job_data, config_import_job_submit
from workflows.models import ConfigImportJob

router = Router(tags=["configuration"])
CONFIG = key_auth(ApiScope.CONFIG)


class ImportSection(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class ImportReportOut(Schema):
    dry_run: bool
    retry_policies: ImportSection
    webhooks: ImportSection
    workflow_rules: ImportSection
    actions_added: list[str]
    actions_changed: list[str]
    actions_removed: list[str]
    runs_cancelled: int
    summary: list[str]


class ImportCounts(Schema):
    created: int
    updated: int
    unchanged: int


class ImportJobOut(Schema):
    """A file imported by a worker: pending, running, done (with the report) or failed (with every problem)."""

    id: str
    url: str
    status: str
    dry_run: bool
    entries: int
    counts: dict[str, ImportCounts] | None
    report: ImportReportOut | None
    problems: list[str]
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None


@router.get("/workflow-rules/", response={200: Page[dict[str, Any]], **COMMON_ERRORS}, auth=CONFIG, summary="List workflow rules")
def rules_list(request: ApiRequest, paging: Query[Paging]):
    """Each rule as in the configuration file, with its id."""
    return page(rules_loaded().filter(organization_id=request.auth.organization_id), cursor=paging.cursor,
                limit=paging.limit, serialize=lambda rule: {"id": rule.pk, **rule_export(rule)})


@router.get("/config/", response={200: dict[str, Any], **COMMON_ERRORS}, auth=CONFIG, summary="Export the configuration")
def config_export(request: ApiRequest):
    """The key's organization's webhooks and rules, and the retry policies, in the format of export_config
    (docs/operate/config-files.md); secrets are null (they never leave through the API)."""
    return config_export_all(organization=request.auth.organization)


@router.post("/config/", response={200: Answer[ImportReportOut], 202: Answer[ImportJobOut], **POST_ERRORS}, auth=CONFIG,
             summary="Import the configuration")
def config_import(request: ApiRequest, file: Body[dict[str, Any]], dry_run: bool = False):
    """The import_config command over HTTP: all or nothing, with every problem located (422 ``invalid_config``,
    ``problems``); a secret left null keeps the stored one. ``dry_run=true`` reports what would change.
    A file of more than CONFIG_IMPORT_SYNC_MAX_ENTRIES webhooks and rules is imported by a worker: 202 with
    the job, whose ``url`` tells how it went."""
    key = request.auth

    def run() -> tuple[int, dict]:
        try:
            if config_import_is_large(file):
                job = config_import_job_submit(data=file, dry_run=dry_run, organization=key.organization)
                return 202, {"data": _job_answer(request, config_import_job_data(job))}
            report = config_import_all(data=file, dry_run=dry_run, organization=key.organization)
        except ConfigError as error:
            raise _invalid_config(error.problems) from None
        return 200, {"data": report_data(report, dry_run=dry_run)}

    return idempotent(request, key, run)


@router.get("/config/imports/{job_id}/", response={200: Answer[ImportJobOut], **COMMON_ERRORS}, auth=CONFIG,
            url_name="config_import_job", summary="Read a configuration import job")
def config_import_job(request: ApiRequest, job_id: str):
    """How a file imported by a worker went: ``pending``, ``running``, ``done`` (``counts`` and the ``report``
    a synchronous import answers) or ``failed`` (``problems``: nothing was imported)."""
    job = owned_or_404(ConfigImportJob, request.auth.organization_id, public_id=job_id,
                       not_found="There is no configuration import with this id.")
    return {"data": _job_answer(request, config_import_job_data(job))}


def _job_answer(request: ApiRequest, data: dict[str, Any]) -> dict[str, Any]:
    """The job with the address to GET it at."""
    return {**data, "url": request.build_absolute_uri(reverse("api:config_import_job", kwargs={"job_id": data["id"]}))}


def _invalid_config(problems: list[str]) -> ApiError:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return ApiError(422, "invalid_config", "Nothing was imported: " + "; ".join(problems[:3]) + more,
                    problems=problems)

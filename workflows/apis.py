"""REST API of workflow rules (read-only) and of the whole configuration (the import_config and
export_config commands over HTTP, for deploying configuration from CI), as a django-ninja router."""
from typing import Any

from ninja import Body, Query, Router, Schema

from crm.api.auth import ApiRequest, key_auth
from crm.api.errors import COMMON_ERRORS, POST_ERRORS, ApiError
from crm.api.idempotency import idempotent
from crm.api.pagination import page
from crm.models import ApiScope
from dispatcher.services import ConfigError
from workflows.config_io import config_export_all, config_import_all, report_lines, rule_export, rules_loaded

router = Router(tags=["configuration"])
CONFIG = key_auth(ApiScope.CONFIG)


class RulePage(Schema):
    data: list[dict[str, Any]]
    next_cursor: str | None


class Paging(Schema):
    cursor: str | None = None
    limit: int | None = None


class ImportSection(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class ImportReportOut(Schema):
    dry_run: bool
    retry_policies: ImportSection
    webhooks: ImportSection
    workflow_rules: ImportSection
    actions_removed: list[str]
    runs_cancelled: int
    summary: list[str]


class ImportAnswer(Schema):
    data: ImportReportOut


@router.get("/workflow-rules/", response={200: RulePage, **COMMON_ERRORS}, auth=CONFIG, summary="List workflow rules")
def rules_list(request: ApiRequest, paging: Query[Paging]):
    """Each rule as in the configuration file, with its id."""
    return page(rules_loaded().filter(organization_id=request.auth.organization_id), cursor=paging.cursor,
                limit=paging.limit, serialize=lambda rule: {"id": rule.pk, **rule_export(rule)})


@router.get("/config/", response={200: dict[str, Any], **COMMON_ERRORS}, auth=CONFIG, summary="Export the configuration")
def config_export(request: ApiRequest):
    """The key's organization's webhooks and rules, and the retry policies, in the format of export_config
    (README "Configuration files"); secrets are null (they never leave through the API)."""
    return config_export_all(organization=request.auth.organization)


@router.post("/config/", response={200: ImportAnswer, **POST_ERRORS}, auth=CONFIG, summary="Import the configuration")
def config_import(request: ApiRequest, file: Body[dict[str, Any]], dry_run: bool = False):
    """The import_config command over HTTP: all or nothing, with every problem located (422 ``invalid_config``,
    ``problems``); a secret left null keeps the stored one. ``dry_run=true`` reports what would change."""
    key = request.auth

    def run() -> tuple[int, dict]:
        try:
            report = config_import_all(data=file, dry_run=dry_run, organization=key.organization)
        except ConfigError as error:
            raise ApiError(422, "invalid_config", "Nothing was imported: " + "; ".join(error.problems[:3])
                           + (f" (and {len(error.problems) - 3} more)" if len(error.problems) > 3 else ""),
                           problems=error.problems) from None
        section = lambda s: {"created": s.created, "updated": s.updated, "unchanged": s.unchanged}  # noqa: E731
        return 200, {"data": {
            "dry_run": dry_run, "retry_policies": section(report.retry_policies), "webhooks": section(report.webhooks),
            "workflow_rules": section(report.rules), "actions_removed": report.actions_removed,
            "runs_cancelled": report.runs_cancelled, "summary": report_lines(report, dry_run=dry_run)}}

    return idempotent(request, key, run)

"""Operations endpoints: /healthz for load balancers and /metrics for Prometheus."""
import hmac

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.admin_base import organization_ids
from config.version import __version__
from dispatcher.ops.metrics import metrics_registry

BROKER_TIMEOUT_SECONDS = 2


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (the web process needs nothing else to take records); the broker
    is reported too, as its loss only delays deliveries. The version says which release answered (a rolling
    upgrade can be watched from the load balancer)."""
    checks = {"database": _check(_database), "broker": _check(_broker)}
    healthy = checks["database"] == "ok"
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded" if healthy else "failing"
    return JsonResponse({"status": status, "version": __version__, "checks": checks},
                        status=200 if healthy else 503)


def _check(probe) -> str:
    try:
        probe()
    except Exception as error:  # noqa: BLE001 - any failure of a probe is its report
        return f"error: {type(error).__name__}"
    return "ok"


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: the installation's view (every organization's name and quota, the engine) for
    a scraper with METRICS_TOKEN or a superuser; only their organization's series for staff who may read the
    log, who must not learn which other organizations share the installation."""
    user = request.user
    if _has_metrics_token(request) or user.is_superuser:
        organizations = None
    elif user.is_authenticated and user.is_staff and user.has_perm("dispatcher.view_delivery"):
        organizations = organization_ids(user) or set()
    else:
        response = JsonResponse({"error": {"code": "unauthorized", "message": "Send Authorization: Bearer "
                                           "<METRICS_TOKEN>, or sign in as staff who may view deliveries."}},
                                status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(generate_latest(metrics_registry(organizations=organizations)),
                        content_type=CONTENT_TYPE_LATEST)


def _has_metrics_token(request: HttpRequest) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bool(settings.METRICS_TOKEN) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), settings.METRICS_TOKEN.encode())

"""Operations endpoints: /healthz for load balancers and /metrics for Prometheus."""
import hmac

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.metrics import metrics_registry

BROKER_TIMEOUT_SECONDS = 2


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (the web process needs nothing else to take records); the broker
    is reported too, as its loss only delays deliveries."""
    checks = {"database": _check(_database), "broker": _check(_broker)}
    healthy = checks["database"] == "ok"
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded" if healthy else "failing"
    return JsonResponse({"status": status, "checks": checks}, status=200 if healthy else 503)


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
    """Prometheus text format, for a scraper with METRICS_TOKEN or a staff user who may read the log."""
    if not _metrics_allowed(request):
        response = JsonResponse({"error": {"code": "unauthorized", "message": "Send Authorization: Bearer "
                                           "<METRICS_TOKEN>, or sign in as staff who may view deliveries."}},
                                status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def _metrics_allowed(request: HttpRequest) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if settings.METRICS_TOKEN and scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.METRICS_TOKEN.encode()):
        return True
    user = request.user
    return user.is_authenticated and user.is_staff and user.has_perm("dispatcher.view_delivery")

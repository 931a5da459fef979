from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.api import api
from dispatcher.ops import healthz as ops

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("metrics", ops.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("api/", include("crm.urls")),  # anything else under /api/: a JSON 404
]

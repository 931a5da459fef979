from django.urls import path, re_path

from crm import apis

urlpatterns = [
    path("v1/records/<str:module>/", apis.records_create, name="api_records"),
    path("v1/records/<str:module>/bulk/", apis.records_bulk_create, name="api_records_bulk"),
    path("v1/records/<str:module>/<int:pk>/", apis.record_detail, name="api_record"),
    re_path(r"^(?P<rest>.*)$", apis.not_found),
]

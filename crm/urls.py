from django.urls import re_path

from crm.api.errors import problem_response


def not_found(request, rest: str = ""):
    return problem_response(404, "not_found", f"There is no API endpoint {request.path}.")


urlpatterns = [re_path(r"^(?P<rest>.*)$", not_found)]

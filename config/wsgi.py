import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from dispatcher.checks import insecure_start_reason  # noqa: E402 - needs the apps loaded

if reason := insecure_start_reason("web process"):
    raise ImproperlyConfigured(reason)  # gunicorn: "Worker failed to boot", and the arbiter stops

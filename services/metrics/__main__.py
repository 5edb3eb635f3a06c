"""`python -m services.metrics`: start the metrics service."""

from services.metrics.app import create_app
from services.metrics.settings import MetricsSettings
from shared.service import serve

settings = MetricsSettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

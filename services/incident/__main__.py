"""`python -m services.incident`: start the incident service."""

from services.incident.app import create_app
from services.incident.settings import IncidentSettings
from shared.service import serve

settings = IncidentSettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

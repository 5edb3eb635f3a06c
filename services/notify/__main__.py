"""`python -m services.notify`: start the notify service."""

from services.notify.app import create_app
from services.notify.settings import NotifySettings
from shared.service import serve

settings = NotifySettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

"""`python -m services.desk`: start the desk service."""

from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared.service import serve

settings = DeskSettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

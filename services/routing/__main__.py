"""`python -m services.routing`: start the routing service."""

from services.routing.app import create_app
from services.routing.settings import RoutingSettings
from shared.service import serve

settings = RoutingSettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

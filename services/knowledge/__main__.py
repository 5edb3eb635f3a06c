"""`python -m services.knowledge`: start the knowledge service."""

from services.knowledge.app import create_app
from services.knowledge.settings import KnowledgeSettings
from shared.service import serve

settings = KnowledgeSettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

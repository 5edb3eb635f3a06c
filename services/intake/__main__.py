"""`python -m services.intake`: start the intake service."""

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.service import serve

settings = IntakeSettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

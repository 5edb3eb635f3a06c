"""`python -m services.survey`: start the survey service."""

from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared.service import serve

settings = SurveySettings()
serve(create_app(settings), host=settings.http_host, port=settings.http_port)

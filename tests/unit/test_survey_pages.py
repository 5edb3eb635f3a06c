"""The survey pages render every dimension and escape what they show."""

from services.survey.domain import DIMENSIONS
from services.survey.handlers import _pages


def test_the_form_asks_for_every_dimension_on_a_1_to_5_scale() -> None:
    html = _pages.get_template("form.html.j2").render(dimensions=DIMENSIONS)
    for field, _ in DIMENSIONS:
        assert html.count(f'name="{field}"') == 5


def test_the_form_escapes_the_error_it_shows() -> None:
    html = _pages.get_template("form.html.j2").render(dimensions=DIMENSIONS, error="<script>x")
    assert "<script>x" not in html and "&lt;script&gt;x" in html

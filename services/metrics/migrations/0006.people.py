"""People come from desk (careloop.people.v1): the reports API's supervisors and admins are
whoever desk says they are, with the API tokens desk issued them."""

from shared.people import people_steps

steps = people_steps("metrics")

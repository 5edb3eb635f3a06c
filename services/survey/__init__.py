"""survey: the satisfaction loop after resolution, closed by reopening low scores."""

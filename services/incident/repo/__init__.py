"""SQL for incident's own schema, by what it is about; never commits: the use case owns the
transaction."""

from services.incident.repo import incidents, outreach, tickets

__all__ = ["incidents", "outreach", "tickets"]

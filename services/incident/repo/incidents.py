"""SQL of alerts, incidents, their timeline and their tickets' links."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# ---- alerts -------------------------------------------------------------------------------------


async def silenced(
    conn: asyncpg.Connection, *, kind: str, dimension: str, value: str, since: datetime
) -> bool:
    """Whether this key alerted since `since`, or alerted into an incident still open."""
    found: bool = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM alerts a LEFT JOIN incidents i USING (incident_id)
            WHERE a.kind = $1 AND a.dimension = $2 AND a.value = $3
              AND (a.raised_at > $4 OR i.status <> 'resolved'))
        """,
        kind,
        dimension,
        value,
        since,
    )
    return found


async def add_alert(conn: asyncpg.Connection, alert: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO alerts (alert_id, kind, dimension, value, observed, expected, p_value, title,
                            keywords, sample_ticket_ids, raised_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        *(
            alert[k]
            for k in (
                "alert_id",
                "kind",
                "dimension",
                "value",
                "observed",
                "expected",
                "p_value",
                "title",
                "keywords",
                "sample_ticket_ids",
                "raised_at",
            )
        ),
    )


async def alert(conn: asyncpg.Connection, alert_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM alerts WHERE alert_id = $1 FOR UPDATE", alert_id)


async def alerts(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM alerts ORDER BY raised_at DESC LIMIT $1", limit)


# ---- incidents ----------------------------------------------------------------------------------


async def add_incident(conn: asyncpg.Connection, incident: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO incidents (incident_id, number, title, title_en, severity, status, criteria,
                               owner_id, alert_id, opened_by)
        VALUES ($1, 'INC-' || lpad(nextval('incident_numbers')::text, 4, '0'), $2, $3, $4,
                'investigating', $5, $6, $7, $8)
        RETURNING *
        """,
        incident["incident_id"],
        incident["title"],
        incident["title_en"],
        incident["severity"],
        incident["criteria"],
        incident["owner_id"],
        incident["alert_id"],
        incident["opened_by"],
    )
    assert row is not None  # an INSERT's RETURNING
    if incident["alert_id"] is not None:
        await conn.execute(
            "UPDATE alerts SET incident_id = $1 WHERE alert_id = $2",
            incident["incident_id"],
            incident["alert_id"],
        )
    return row


async def incident(
    conn: asyncpg.Connection, incident_id: UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT * FROM incidents WHERE incident_id = $1{' FOR UPDATE' if lock else ''}",
        incident_id,
    )


async def incident_by_number(conn: asyncpg.Connection, number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM incidents WHERE number = $1", number)


async def incidents(
    conn: asyncpg.Connection, *, open_only: bool, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT i.*, (SELECT count(*) FROM links k
                     WHERE k.incident_id = i.incident_id AND k.unlinked_at IS NULL)::int AS linked
        FROM incidents i WHERE NOT $1 OR i.status <> 'resolved'
        ORDER BY i.opened_at DESC LIMIT $2
        """,
        open_only,
        limit,
    )


async def open_incidents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Open incidents, most severe first, then oldest: the order linking tries them in."""
    return await conn.fetch(
        """
        SELECT incident_id, number, title, criteria FROM incidents
        WHERE status <> 'resolved' ORDER BY severity, opened_at
        """
    )


async def update_incident(
    conn: asyncpg.Connection, incident_id: UUID, changes: dict[str, Any]
) -> asyncpg.Record:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
    row = await conn.fetchrow(
        f"UPDATE incidents SET {columns} WHERE incident_id = $1 RETURNING *",
        incident_id,
        *changes.values(),
    )
    assert row is not None  # the caller locked the row
    return row


async def add_entry(
    conn: asyncpg.Connection,
    *,
    incident_id: UUID,
    kind: str,
    by: str,
    status: str | None = None,
    message: str | None = None,
    message_en: str | None = None,
    public: bool = False,
) -> None:
    await conn.execute(
        """
        INSERT INTO timeline (incident_id, kind, status, message, message_en, by, public)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        incident_id,
        kind,
        status,
        message,
        message_en,
        by,
        public,
    )


async def timeline(
    conn: asyncpg.Connection, incident_ids: Sequence[UUID], *, public_only: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT * FROM timeline WHERE incident_id = ANY($1::uuid[]) AND (public OR NOT $2)
        ORDER BY entry_id
        """,
        list(incident_ids),
        public_only,
    )


# ---- links --------------------------------------------------------------------------------------


async def link(
    conn: asyncpg.Connection, incident_id: UUID, ticket_ids: Sequence[UUID], *, by: str | None
) -> list[UUID]:
    """Link the tickets; returns those linked now (a ticket once unlinked stays unlinked)."""
    found = await conn.fetch(
        """
        INSERT INTO links (incident_id, ticket_id, linked_by)
        SELECT $1, unnest($2::uuid[]), $3 ON CONFLICT DO NOTHING RETURNING ticket_id
        """,
        incident_id,
        list(ticket_ids),
        by,
    )
    return [r["ticket_id"] for r in found]


async def relink(conn: asyncpg.Connection, incident_id: UUID, ticket_id: UUID, by: str) -> bool:
    """An agent links a ticket the criteria did not (or that was unlinked): True when it was
    not linked."""
    status = await conn.execute(
        """
        INSERT INTO links AS k (incident_id, ticket_id, linked_by) VALUES ($1, $2, $3)
        ON CONFLICT (incident_id, ticket_id) DO UPDATE
            SET linked_by = excluded.linked_by, linked_at = now(), unlinked_by = NULL,
                unlinked_at = NULL
            WHERE k.unlinked_at IS NOT NULL
        """,
        incident_id,
        ticket_id,
        by,
    )
    return status.endswith(" 1")


async def unlink(conn: asyncpg.Connection, incident_id: UUID, ticket_id: UUID, by: str) -> bool:
    status = await conn.execute(
        """
        UPDATE links SET unlinked_by = $3, unlinked_at = now()
        WHERE incident_id = $1 AND ticket_id = $2 AND unlinked_at IS NULL
        """,
        incident_id,
        ticket_id,
        by,
    )
    return status.endswith(" 1")


async def held_elsewhere(
    conn: asyncpg.Connection, incident_id: UUID, ticket_id: UUID
) -> str | None:
    """The number of another open incident the ticket is linked to, if any."""
    number: str | None = await conn.fetchval(
        """
        SELECT i.number FROM links k JOIN incidents i USING (incident_id)
        WHERE k.ticket_id = $2 AND k.incident_id <> $1 AND k.unlinked_at IS NULL
          AND i.status <> 'resolved'
        """,
        incident_id,
        ticket_id,
    )
    return number


async def linked(conn: asyncpg.Connection, incident_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT k.ticket_id, t.number, t.subject, t.channel, t.course_id, t.category,
               k.linked_by, k.linked_at, k.unlinked_by, k.unlinked_at
        FROM links k LEFT JOIN tickets t USING (ticket_id)
        WHERE k.incident_id = $1 ORDER BY k.linked_at LIMIT $2
        """,
        incident_id,
        limit,
    )


async def active_links(conn: asyncpg.Connection, incident_id: UUID) -> list[UUID]:
    found = await conn.fetch(
        "SELECT ticket_id FROM links WHERE incident_id = $1 AND unlinked_at IS NULL",
        incident_id,
    )
    return [r["ticket_id"] for r in found]

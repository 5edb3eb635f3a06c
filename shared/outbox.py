"""Transactional outbox: events written with the change that caused them, relayed to Kafka."""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from shared import telemetry
from shared.cancel import raise_if_cancelled
from shared.errors import is_transient
from shared.events import Envelope, now
from shared.kafka import OutgoingMessage, headers_for, publish_confirmed

log = structlog.get_logger(__name__)


IDLE_LOOK_SECONDS = 10.0
INSERT = "INSERT INTO outbox (topic, key, event_id, event_type, payload)"


def row(event: Envelope[Any]) -> tuple[str, str, Any, str, bytes]:
    """The outbox columns of `event`, in INSERT's order, for statements that stage one event
    together with their own change (a CTE) in a single round trip."""
    return (event.topic, event.key, event.event_id, event.type, event.to_json())


async def add(conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
    """Stage `events` in the caller's transaction; one statement however many there are."""
    if not events:
        return
    rows = [row(e) for e in events]
    await conn.execute(
        f"""
        {INSERT}
        SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::bytea[])
        """,
        *(list(column) for column in zip(*rows, strict=True)),
    )


class OutboxRelay:
    """Publishes the outbox in id order and deletes what Kafka acknowledged.

    One relay per schema is the leader (a Postgres advisory lock), so per-key order holds
    with any number of replicas. A crash between publish and delete re-sends; consumers
    de-duplicate by event id.
    """

    def __init__(self, *, broker: KafkaBroker, dsn: str, schema: str, batch: int = 1000) -> None:
        self._broker = broker
        self._dsn = dsn
        self._schema = schema
        self._batch = batch
        self._wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay restarting", schema=self._schema, error=repr(exc))
                await asyncio.sleep(1 if is_transient(exc) else 5)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings={"search_path": self._schema})
        try:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"outbox:{self._schema}")
            await conn.add_listener(f"{self._schema}_outbox", lambda *_: self._wake.set())
            while True:
                raise_if_cancelled()
                self._wake.clear()
                if await self.relay_once(conn) < self._batch:
                    # Every commit that stages events notifies this connection; the timeout
                    # is only a safety net, so an idle service does not poll every second.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IDLE_LOOK_SECONDS):
                            await self._wake.wait()
        finally:
            await conn.close()

    async def relay_once(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, event_type, payload, created_at FROM outbox ORDER BY id LIMIT $1",
            self._batch,
        )
        if not rows:
            return 0
        await publish_confirmed(
            self._broker,
            [
                OutgoingMessage(r["topic"], r["key"], r["payload"], headers_for(r["event_type"]))
                for r in rows
            ],
        )
        telemetry.OUTBOX_LAG.labels(self._schema).set(
            (now() - rows[0]["created_at"]).total_seconds()
        )
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        telemetry.OUTBOX_PUBLISHED.labels(self._schema).inc(len(rows))
        return len(rows)

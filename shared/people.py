"""The people who work tickets, as desk announces them (`person.changed` on
careloop.people.v1), for any other service: a read model of its own (a `people` table, made by
`people_steps` in one of its migrations), kept by `HANDLERS` in its consumer, and
`person_by_token` for `shared.agents.bearer_auth`.

desk owns people; a service that learns them here never writes them. The agents file seeds the
table at start (`seed`), so a service knows the seed's people before desk's first announcement;
a seeded row is dated -infinity, so anything desk says wins over it.
"""

from collections.abc import Sequence
from typing import Any

import asyncpg
from yoyo import step

from shared.agents import AgentSeed
from shared.events import Envelope, PersonChanged
from shared.inbox import Handler, last_per_key


def people_sql(schema: str) -> str:
    return f"""
        CREATE TABLE {schema}.people (
            agent_id text PRIMARY KEY,
            name text NOT NULL,
            email text,
            role text NOT NULL,
            teams text[] NOT NULL DEFAULT '{{}}',
            language text NOT NULL DEFAULT 'zh',
            active boolean NOT NULL,
            api_token_sha256 text[] NOT NULL DEFAULT '{{}}',
            changed_at timestamptz NOT NULL
        );
        CREATE INDEX people_tokens ON {schema}.people USING gin (api_token_sha256);
    """


def people_steps(schema: str) -> list[Any]:
    return [step(people_sql(schema), f"DROP TABLE {schema}.people")]


async def apply_changes(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """Each person as last announced; an older announcement than the one held changes nothing,
    so a redelivery is harmless."""
    people: list[PersonChanged] = [e.data for e in last_per_key(events, lambda e: e.data.agent_id)]
    await conn.execute(
        """
        INSERT INTO people AS p (agent_id, name, email, role, teams, language, active,
                                 api_token_sha256, changed_at)
        SELECT r.agent_id, r.name, r.email, r.role, string_to_array(r.teams, ' '), r.language,
               r.active, string_to_array(r.tokens, ' '), r.changed_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::bool[], $8::text[], $9::timestamptz[])
            AS r(agent_id, name, email, role, teams, language, active, tokens, changed_at)
        ON CONFLICT (agent_id) DO UPDATE
        SET name = excluded.name, email = excluded.email, role = excluded.role,
            teams = excluded.teams, language = excluded.language, active = excluded.active,
            api_token_sha256 = excluded.api_token_sha256, changed_at = excluded.changed_at
        WHERE p.changed_at < excluded.changed_at
        """,
        [p.agent_id for p in people],
        [p.name for p in people],
        [p.email for p in people],
        [p.role for p in people],
        [" ".join(p.teams) for p in people],  # team names have no spaces (TEAM_PATTERN)
        [p.language for p in people],
        [p.active for p in people],
        [" ".join(p.api_token_sha256) for p in people],  # hex digests
        [p.changed_at for p in people],
    )


# For `shared.service.consume`: person.changed is applied by its key (newest wins), no inbox.
HANDLERS: dict[str, Handler] = {PersonChanged.TYPE: apply_changes}
IDEMPOTENT = frozenset({PersonChanged.TYPE})


async def seed(conn: asyncpg.Connection, agents: Sequence[AgentSeed]) -> None:
    """The agents file's people, where desk has not announced them yet."""
    await conn.executemany(
        """
        INSERT INTO people AS p (agent_id, name, email, role, teams, active, api_token_sha256,
                                 changed_at)
        VALUES ($1, $2, $3, $4, $5, true, ARRAY[$6], '-infinity')
        ON CONFLICT (agent_id) DO UPDATE
        SET name = excluded.name, email = excluded.email, role = excluded.role,
            teams = excluded.teams, api_token_sha256 = excluded.api_token_sha256
        WHERE p.changed_at = '-infinity'
        """,
        [(a.id, a.name, a.email, a.role.value, list(a.teams), a.token_sha256) for a in agents],
    )


async def person_by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    """The active person one of whose unrevoked API tokens this is (`bearer_auth`'s look-up)."""
    return await conn.fetchrow(
        "SELECT agent_id, name, email, role, teams FROM people "
        "WHERE active AND api_token_sha256 @> ARRAY[$1::text]",
        token_sha256,
    )

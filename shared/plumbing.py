"""Steps every service's first migration applies: its outbox (with a wake-up) and inbox."""

from typing import Any

from yoyo import step


def plumbing_sql(schema: str) -> str:
    """DDL of the outbox and inbox in `schema` (which must exist)."""
    return f"""
        CREATE TABLE {schema}.outbox (
            id bigserial PRIMARY KEY,
            topic text NOT NULL,
            key text NOT NULL,
            event_id uuid NOT NULL,
            event_type text NOT NULL,
            payload bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE FUNCTION {schema}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{schema}_outbox', ''); RETURN NULL; END $$;
        CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.outbox_notify();
        CREATE TABLE {schema}.inbox (
            event_id uuid PRIMARY KEY,
            handled_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX inbox_handled_at ON {schema}.inbox (handled_at);
    """


def plumbing_steps(schema: str) -> list[Any]:
    return [
        step(
            plumbing_sql(schema),
            f"DROP TABLE {schema}.outbox, {schema}.inbox; DROP FUNCTION {schema}.outbox_notify();",
        ),
    ]

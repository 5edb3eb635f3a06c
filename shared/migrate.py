"""Apply a service's versioned migrations with yoyo; `python -m shared.migrate SERVICE...`."""

import argparse
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


class SchemaMissing(RuntimeError):
    """The service's schema does not exist and its role may not create it."""


def yoyo_url(dsn: str, schema: str, *, role: str | None = None) -> str:
    """yoyo names its driver in the URL scheme and keeps its own tables in `schema`; with
    `role`, the session acts as that role (SET ROLE), so what it creates is that role's."""
    sep = "&" if "?" in dsn else "?"
    url = f"postgresql+psycopg://{dsn.split('://', 1)[1]}{sep}schema={schema}"
    if role is not None:
        url += "&options=" + quote(f"-c role={role}")
    return url


def migrate(dsn: str, service: str) -> int:
    """Apply what is pending for `service` under yoyo's lock; returns how many were applied.

    Each service's migrations and yoyo's bookkeeping live in the service's own schema. Run as
    the service's own role (which owns its schema) or as an admin: an admin acts as the
    schema's owner, so every table stays the service role's. A schema that does not exist yet
    is created, which a service role may not do: the provisioning step creates it.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Replicas start together; CREATE SCHEMA IF NOT EXISTS is not safe against a twin.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"migrate:{service}",))
        exists, owner, user = _schema_owner(conn, service)
        if not exists:
            _create_schema(conn, service, user)
        backend = get_backend(yoyo_url(dsn, service, role=owner))
        migrations = read_migrations(str(SERVICES_DIR / service / "migrations"))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return len(pending)  # the lock goes with the connection


def _schema_owner(conn: psycopg.Connection, schema: str) -> tuple[bool, str | None, str]:
    """Whether the schema exists; its owner when this session should act as it (an admin or
    another member of that role), else None; and the session's own user."""
    row = conn.execute(
        """
        SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s),
               (SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                WHERE n.nspname = %(schema)s
                  AND r.rolname <> current_user
                  AND pg_has_role(current_user, r.oid, 'MEMBER')),
               current_user
        """,
        {"schema": schema},
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def _create_schema(conn: psycopg.Connection, schema: str, user: str) -> None:
    try:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SchemaMissing(
            f"schema {schema} does not exist and {user} may not create it: provision it as an "
            f"admin (CREATE SCHEMA {schema} AUTHORIZATION {user})"
        ) from exc


def main() -> None:
    from shared.settings import CommonSettings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="+")
    args = parser.parse_args()
    settings = CommonSettings()
    for service in args.services:
        dsn = settings.for_service(service).pg_dsn.get_secret_value()
        print(f"{service}: {migrate(dsn, service)} migration(s) applied")


if __name__ == "__main__":
    main()

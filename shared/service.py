"""One composition root per process: connections opened in the lifespan, closed on shutdown."""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
import structlog
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from swagger_ui_bundle import swagger_ui_path

from shared import logs
from shared.cancel import raise_if_cancelled
from shared.db import create_pool
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.inbox import EventConsumer, Handler, Records, forget_before, subscribe
from shared.kafka import BrokerWatch, ensure_topics, make_broker
from shared.migrate import migrate
from shared.outbox import OutboxRelay
from shared.quiet import RepeatFilter
from shared.settings import CommonSettings

log = structlog.get_logger(__name__)

# How long a stopping service waits for its Kafka clients to close.
BROKER_STOP_SECONDS = 5
# A background task is asked to stop again this often, at most this many times: one that a
# library let swallow the first cancellation (see shared.cancel) stops at its next await.
TASK_STOP_SECONDS = 1.0
TASK_STOP_TRIES = 10


S = TypeVar("S", bound=CommonSettings)


@dataclass
class Context(Generic[S]):
    """What a service's handlers need of the world; connections are opened by the lifespan."""

    service: str
    settings: S
    broker: KafkaBroker
    watch: BrokerWatch
    _pool: asyncpg.Pool | None = None
    _redis: Redis | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the Postgres pool is opened in the lifespan")
        return self._pool

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("Redis is opened in the lifespan")
        return self._redis


Task = Callable[[Context[Any]], Coroutine[Any, Any, None]]


async def every(seconds: float, step: Callable[[], Awaitable[bool]], *, what: str) -> None:
    """Run `step` forever: again at once while it says there is more, else after `seconds`.

    A dependency that is down is logged and retried on the next round, never fatal.
    """
    while True:
        more = False
        try:
            more = await step()
        except TRANSIENT_DRIVER_ERRORS as exc:
            log.warning(f"{what} failed; retrying", error=repr(exc))
        raise_if_cancelled()  # a driver may have swallowed the cancellation (shared.cancel)
        if not more:
            await asyncio.sleep(seconds)


async def _stop_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait for them, cancelling again those still running each second: a
    stopping service must not wait forever on a loop that swallowed its cancellation."""
    pending = set(tasks)
    for _ in range(TASK_STOP_TRIES):
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=TASK_STOP_SECONDS)
        if not pending:
            return
        log.warning(
            "background tasks still running; cancelling again",
            tasks=sorted(t.get_name() for t in pending),
        )
    log.error("background tasks did not stop", tasks=sorted(t.get_name() for t in pending))


async def _prune_inbox(ctx: Context[Any]) -> None:
    async def step() -> bool:
        async with ctx.pool.acquire() as conn:
            return await forget_before(conn, ctx.settings.inbox_retention_hours) > 0

    await every(600, step, what="inbox retention")


def new_context(service: str, settings: S) -> Context[S]:
    settings = settings.for_service(service)  # its own PostgreSQL role, when it has one
    broker = make_broker(settings, client_id=service)
    watch = BrokerWatch(
        broker=broker, settings=settings, service=service, interval=settings.kafka_watch_seconds
    )
    return Context(service=service, settings=settings, broker=broker, watch=watch)


def consume(
    ctx: Context[Any],
    *,
    topic_names: Sequence[str],
    handlers: Mapping[str, Handler],
    idempotent: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
    arrange: Callable[[Records], Records] | None = None,
) -> None:
    """The service's consumer group on `topic_names`, applying each event once with `handlers`;
    the types in `idempotent` are handled idempotently by their own key, `options` and
    `arrange` as `shared.inbox.subscribe` takes them."""
    consumer = EventConsumer(
        name=ctx.service,
        handlers=handlers,
        pool=lambda: ctx.pool,
        broker=ctx.broker,
        attempts=ctx.settings.consumer_attempts,
        idempotent=frozenset(idempotent),
    )
    subscribe(
        ctx.broker,
        consumer,
        topic_names=topic_names,
        group_id=ctx.service,
        settings=ctx.settings,
        options=options,
        arrange=arrange,
    )


def build_app(
    ctx: Context[Any],
    *,
    uses_postgres: bool = True,
    uses_redis: bool = False,
    on_start: Task | None = None,
    background: tuple[Task, ...] = (),
    title: str,
) -> FastAPI:
    """A FastAPI app with /metrics and /healthz whose lifespan runs the service's plumbing."""
    settings = ctx.settings

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logs.configure(settings.log_level, service=ctx.service)
        for handler in logging.getLogger().handlers:
            handler.addFilter(RepeatFilter())
        dsn = settings.pg_dsn.get_secret_value()
        if uses_postgres:
            if settings.migrate_on_start:
                applied = await asyncio.to_thread(migrate, dsn, ctx.service)
                log.info("migrations applied", count=applied)
            ctx._pool = await create_pool(dsn, schema=ctx.service, max_size=settings.pg_pool_max)
        if uses_redis:
            ctx._redis = Redis.from_url(settings.redis_url)
        await ensure_topics(settings)
        if on_start:
            await on_start(ctx)
        await ctx.broker.start()
        await ctx.watch.check()
        tasks = [asyncio.create_task(t(ctx), name=t.__name__) for t in background]
        tasks.append(asyncio.create_task(ctx.watch.run(), name="broker-watch"))
        if uses_postgres:
            tasks.append(asyncio.create_task(_prune_inbox(ctx), name="inbox-retention"))
            relay = OutboxRelay(
                broker=ctx.broker, dsn=dsn, schema=ctx.service, batch=settings.relay_batch
            )
            tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        log.info("started")
        try:
            yield
        finally:
            await _stop_tasks(tasks)
            try:
                # With the broker gone, the producer would wait out its delivery timeout for
                # messages nobody waits for any more: their senders got a 503 (outcome unknown,
                # retry safe), and an outbox sends its rows again on the next start.
                async with asyncio.timeout(BROKER_STOP_SECONDS):
                    await ctx.broker.stop()
            except TimeoutError:
                log.warning("broker did not stop in time; unsent messages left to retries")
            if ctx._redis is not None:
                await ctx._redis.aclose()
            if ctx._pool is not None:
                await ctx._pool.close()
            log.info("stopped")

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        max_body_size=settings.http_max_body_bytes,
        docs_url=None,  # served below from vendored assets: no CDN, works offline
        redoc_url=None,
    )

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable", error=repr(exc))
        return JSONResponse(
            {"detail": "a dependency is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for error in TRANSIENT_DRIVER_ERRORS:
        app.add_exception_handler(error, unavailable)

    metrics_token = settings.metrics_token

    @app.get("/metrics", include_in_schema=False)
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        if metrics_token is not None and not secrets.compare_digest(
            (authorization or "").encode(), f"Bearer {metrics_token.get_secret_value()}".encode()
        ):
            return JSONResponse(
                {"detail": "a bearer token is required for /metrics"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Each dependency on its own; 503 when the service cannot do its work."""
        checks = {
            "kafka": ctx.watch.reachable and await ctx.broker.ping(timeout=2),
            "kafka_topics": ctx.watch.topics_ready,
            "kafka_consumers": ctx.watch.healthy,
        }
        if uses_postgres:
            checks["postgres"] = await _probe(lambda: ctx.pool.fetchval("SELECT true"))
        if uses_redis:
            checks["redis"] = await _probe(ctx.redis.ping)
        ok = all(checks.values())
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    return app


async def _probe(check: Callable[[], Awaitable[Any]]) -> bool:
    """Whether a dependency answers within two seconds; any failure is a no."""
    try:
        async with asyncio.timeout(2):
            return bool(await check())
    except Exception:
        return False


def serve(app: FastAPI, *, host: str, port: int) -> None:
    """Run `app` until SIGINT/SIGTERM; uvicorn drives the lifespan.

    uvicorn's own proxy handling is off: by default it believes X-Forwarded-For from
    127.0.0.1, so a local client could pick its address. A service that sits behind proxies
    says which in a setting (e.g. CARELOOP_INTAKE_TRUSTED_PROXIES, shared.ratelimit).
    A stop waits at most 5 s for open requests: the workspace's live feeds never end by
    themselves.
    """
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )

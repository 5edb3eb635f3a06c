"""The portal in a real browser: Debian's Chromium driven by Playwright, on a phone-sized
screen, against desk served over real HTTP (uvicorn) on its own stack.

Playwright's own browser download is not used: the tests launch /usr/bin/chromium
(`apt-get install chromium fonts-wqy-microhei`; the CJK font is what renders Chinese).
Screenshots go to CARELOOP_SCREENSHOTS, or a temporary folder named in the run's output.
"""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright
from pydantic import SecretStr

from services.desk import handlers
from services.desk.app import create_app
from services.desk.links import Links
from services.desk.settings import DeskSettings
from shared.settings import CommonSettings
from tests.browser.tickets import Tickets
from tests.integration.inprocess import environment, service_env
from tests.support import RunningStack, eventually, fresh_groups, port, running_stack

CHROMIUM = os.environ.get("CARELOOP_CHROMIUM", "/usr/bin/chromium")
PHONE: ViewportSize = {"width": 390, "height": 844}
LINK_SECRET = "portal-browser-test-link-secret-0123456789"


@pytest.fixture(scope="package")
def stack() -> Iterator[RunningStack]:
    with running_stack(port(26000)) as s:
        yield s


@pytest.fixture(scope="package")
def desk_env(stack: RunningStack) -> dict[str, str]:
    return {
        **service_env(stack),
        **fresh_groups(),
        "CARELOOP_DESK_HTTP_PORT": str(port(24082)),
        "CARELOOP_DESK_LINK_SECRET": LINK_SECRET,
    }


@pytest.fixture(scope="package")
async def desk_url(desk_env: dict[str, str]) -> AsyncIterator[str]:
    """desk as `python -m services.desk` runs it, in this event loop."""
    with environment(desk_env):
        settings = DeskSettings()
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.http_port,
            log_config=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())

        async def started() -> bool:
            if serving.done():
                serving.result()  # raises what stopped it
            return server.started

        await eventually(started, timeout=60, interval=0.1)
        try:
            yield settings.public_url
        finally:
            server.should_exit = True
            await serving


@pytest.fixture(scope="package")
def links(desk_env: dict[str, str]) -> Links:
    with environment(desk_env):
        return handlers.links_for(DeskSettings())


@pytest.fixture(scope="package")
async def tickets(desk_url: str, stack: RunningStack) -> AsyncIterator[Tickets]:
    settings = CommonSettings(
        kafka_bootstrap=stack.bootstrap,
        pg_dsn=SecretStr(stack.dsn),
        redis_url=stack.redis_url,
    )
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
        yield Tickets(desk=client, settings=settings, dsn=stack.dsn)


@pytest.fixture(scope="package")
def shots() -> Path:
    folder = os.environ.get("CARELOOP_SCREENSHOTS") or tempfile.mkdtemp(prefix="careloop-portal-")
    print(f"\nportal screenshots: {folder}")
    return Path(folder)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        await browser.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[Page]:
    """A fresh phone-sized page (390×844, touch), as a learner opens a link from a message."""
    context: BrowserContext = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    page = await context.new_page()
    yield page
    await context.close()

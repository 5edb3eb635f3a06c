"""The shared bearer-token dependency: 401 without a token or with an unknown one."""

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.agents import bearer_auth, token_hash


class Pool:
    """Just enough of a pool for the dependency: the lookup below ignores the connection."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        yield None


async def find(_: Any, token_sha256: str) -> dict[str, str] | None:
    return {"agent_id": "alice"} if token_sha256 == token_hash("good-token") else None


app = FastAPI()
authenticated = bearer_auth(lambda: Pool(), find)  # type: ignore[arg-type, return-value]


@app.get("/me")
async def me(agent: Annotated[dict[str, str], Depends(authenticated)]) -> dict[str, str]:
    return agent


client = TestClient(app)


def test_a_known_token_names_its_agent() -> None:
    r = client.get("/me", headers={"Authorization": "Bearer good-token"})
    assert (r.status_code, r.json()) == (200, {"agent_id": "alice"})


def test_no_token_is_401_with_a_bearer_challenge() -> None:
    r = client.get("/me")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["detail"] == "missing bearer token"


def test_an_unknown_token_is_401() -> None:
    r = client.get("/me", headers={"Authorization": "Bearer forged"})
    assert (r.status_code, r.json()["detail"]) == (401, "unknown token")


def test_another_scheme_is_not_a_bearer_token() -> None:
    assert client.get("/me", headers={"Authorization": "Basic good-token"}).status_code == 401

"""Routing's cost per assignment with 10, 100 and 1,000 agents: does it stay flat?

`python -m bench.routing_agents [--agents 10 100 1000] [--tickets 5000] [--profiles 24]` starts a private
redis-server (port 24379, shifted by CARELOOP_TEST_PORT_SHIFT), gives it a roster of N agents
with mixed teams, languages, channels, course lines, VIP and seniority, and places tickets
through routing's own code: `Roster.plan` (the pools a need looks in, cached per distinct need)
and `LiveLoad.assign` (the Lua script that picks the agent with the most free capacity from the
top of a pool's sorted set), in batches as the consumer does, each batch released again so that
every N places the same tickets into the same free capacity. It reports CPU per assignment in
this process (what routing spends) and in Redis (`INFO cpu`), per N and as a ratio to the
smallest N. PostgreSQL's share (one row per assignment, whatever N) is not part of it.
"""

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from deploy.local.harness import wait_for_port
from services.routing.domain import TEAM_OF
from services.routing.load import AgentState, LiveLoad, Request
from services.routing.skills import MILLI, Need, Profile, Roster, weight_milli
from shared.agents import Role
from shared.events import Category, Channel, Priority

TEAMS = sorted(set(TEAM_OF.values()))
LINES = ("PY", "JAVA", "IELTS", "CPA", "DESIGN")
WEIGHTS = {"email": 0.5, "web": 0.5}
BATCH = 100


def roster(n: int, rng: random.Random, profiles: int) -> list[Profile]:
    """N agents, each in one or two teams, most bilingual, some channel or course-line
    specialists, a tenth senior and a tenth VIP-trained, a supervisor per 20. With `profiles`,
    agents are cut from that many skill profiles (as a contact centre configures skill groups);
    with 0, every agent's skills are drawn on their own (as varied as skills can be)."""
    kinds = [random_profile(f"p{i}", i, rng) for i in range(profiles)]
    return [
        replace(kinds[i % profiles], agent_id=f"a{i:05d}")
        if profiles
        else random_profile(f"a{i:05d}", i, rng)
        for i in range(n)
    ]


def random_profile(agent_id: str, i: int, rng: random.Random) -> Profile:
    teams = {TEAMS[i % len(TEAMS)]}
    if rng.random() < 0.3:
        teams.add(rng.choice(TEAMS))
    return Profile(
        agent_id=agent_id,
        role=Role.SUPERVISOR if i % 20 == 19 else Role.AGENT,
        teams=frozenset(teams),
        languages=frozenset(rng.choice([("zh", "en"), ("zh", "en"), ("zh",), ("en",)])),
        channels=frozenset(rng.choice([(), (), ("email", "web"), ("chat", "wechat")])),
        course_lines=frozenset(rng.sample(LINES, 1) if rng.random() < 0.3 else ()),
        vip=rng.random() < 0.1,
        senior=rng.random() < 0.1,
    )


def needs(count: int, rng: random.Random) -> list[Need]:
    categories = list(Category)
    channels = [c for c in Channel if c is not Channel.SERVICE]
    out = []
    for _ in range(count):
        category = rng.choice(categories)
        out.append(
            Need(
                team=TEAM_OF[category],
                language=rng.choice(("zh", "zh", "en")),
                category=category,
                channel=rng.choice(channels),
                priority=rng.choice([Priority.URGENT, *[Priority.MEDIUM] * 9, Priority.HIGH]),
                course_id=f"{rng.choice(LINES)}-{rng.randint(100, 120)}",
                vip=rng.random() < 0.2,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Figures:
    agents: int
    assigned: int
    routing_us: float  # CPU in this process per assignment
    redis_us: float  # Redis server CPU per assignment


async def redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(redis: Redis, n: int, tickets: int, profiles: int) -> Figures:
    rng = random.Random(n)
    await redis.flushall()
    load = LiveLoad(redis)
    await load.correct(free=[], restore=[], rebuild=True)  # an empty load, `ready`
    people = Roster()
    people.replace(roster(n, rng, profiles))
    # Capacity so that one batch always fits, whatever N: the same work for every N.
    capacity = max(5, -(-2 * BATCH // n)) * MILLI
    await load.sync_agents(
        people.version, [AgentState(a.agent_id, capacity, True) for a in people.agents]
    )
    work = needs(tickets + 10 * BATCH, rng)
    warm, timed = work[: 10 * BATCH], work[10 * BATCH :]
    await place(load, people, warm)  # pools defined, plans cached, scripts loaded
    cpu0, redis0 = time.process_time(), await redis_cpu(redis)
    assigned = await place(load, people, timed)
    cpu1, redis1 = time.process_time(), await redis_cpu(redis)
    return Figures(
        agents=n,
        assigned=assigned,
        routing_us=(cpu1 - cpu0) / len(timed) * 1e6,
        redis_us=(redis1 - redis0) / len(timed) * 1e6,
    )


async def place(load: LiveLoad, people: Roster, work: Sequence[Need]) -> int:
    """Place `work` a batch at a time as routing does, releasing each batch afterwards (its
    release is part of the measured cost too: one script per ticket)."""
    assigned = 0
    for start in range(0, len(work), BATCH):
        batch = work[start : start + BATCH]
        requests = []
        for need in batch:
            plan = people.plan(need)
            requests.append(
                Request(uuid.uuid4(), plan.tiers, weight=weight_milli(WEIGHTS, need.channel))
            )
        picked = await load.assign(requests)
        assigned += sum(p is not None for p in picked)
        await load.release(await load.claims([r.ticket_id for r in requests]))
    return assigned


@contextlib.contextmanager
def redis_server(redis_port: int) -> Iterator[None]:
    """A throwaway redis-server with no persistence, like the local stack's."""
    with tempfile.TemporaryDirectory() as data:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port)]
        command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", data]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            wait_for_port(redis_port, 30)
            yield
        finally:
            server.terminate()
            server.wait(10)


async def measure_all(
    redis_port: int, agent_counts: Sequence[int], tickets: int, profiles: int
) -> list[Figures]:
    redis = Redis(port=redis_port)
    try:
        return [await measure(redis, n, tickets, profiles) for n in agent_counts]
    finally:
        await redis.aclose()


def main(agent_counts: Sequence[int], tickets: int, profiles: int) -> None:
    redis_port = 24379 + int(os.environ.get("CARELOOP_TEST_PORT_SHIFT", "0"))
    with redis_server(redis_port):
        results = asyncio.run(measure_all(redis_port, agent_counts, tickets, profiles))
    base = results[0].routing_us + results[0].redis_us
    print(
        f"{'agents':>7} {'assigned':>9} {'routing µs':>11} {'redis µs':>9} {'total µs':>9} {'ratio':>6}"
    )
    for r in results:
        total = r.routing_us + r.redis_us
        print(
            f"{r.agents:>7} {r.assigned:>9} {r.routing_us:>11.1f} {r.redis_us:>9.1f} "
            f"{total:>9.1f} {total / base:>6.2f}"
        )
    kind = f"{profiles} skill profiles" if profiles else "every agent's skills drawn apart"
    print(
        f"(CPU per assignment, its release included; {tickets} tickets, batches of {BATCH}, {kind})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument(
        "--profiles", type=int, default=24, help="skill profiles agents share (0: each their own)"
    )
    args = parser.parse_args()
    main(args.agents, args.tickets, args.profiles)

"""routing's own cost per ticket, apart from the stack: the learned triage's CPU per ticket in
a batch, and the CPU per assignment with 10, 100 and 1,000 agents (issue 8's measurements).

Both run in the bench's process: the triage on the trained artifact of the current corpus
(trained first when missing, as routing does at start), the assignments through routing's own
code against a private redis-server (`bench.routing_agents`).
"""

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bench import routing_agents
from bench.stack import port
from services.routing.triage import corpus, evaluate, store
from services.routing.triage.store import TriageSettings

TICKETS = 5000
PROFILES = 24


def triage_cpu_ms() -> float:
    """CPU milliseconds per ticket triaging the corpus's tickets in batches of 500."""
    settings = TriageSettings()
    triager = store.load_or_train(settings)
    examples = corpus.read(corpus.files(settings.corpus_dir))
    return evaluate.cpu_per_ticket(triager, examples)


def measure(agent_counts: Sequence[int]) -> dict[str, Any]:
    redis_port = port(24479)  # not a stack's Redis (24379): those phases may still be ending
    with routing_agents.redis_server(redis_port):
        agents = asyncio.run(
            routing_agents.measure_all(redis_port, agent_counts, TICKETS, PROFILES)
        )
    return {
        "triage_cpu_ms_per_ticket": triage_cpu_ms(),
        "agents": [asdict(a) for a in agents],
        "tickets": TICKETS,
        "profiles": PROFILES,
    }

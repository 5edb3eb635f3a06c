"""The AsyncAPI 3.0 document of every careloop topic, generated from shared/events.py.

The payload schemas are the ones msgspec derives from the event Structs (the same types
that decode every record) and, for careloop.inbound.v1, the one pydantic derives from
`InboundSubmission`. `python -m shared.asyncapi > docs/asyncapi.json`; a unit test keeps the
committed file current.
"""

import json
from collections import defaultdict
from typing import Any

import msgspec

from shared import topics
from shared.events import EVENT_TYPES, Envelope, EventData, InboundSubmission, LearnerSnapshot

DESCRIPTIONS = {
    topics.INBOUND: "Submissions from other services (LMS, payments, course operations).",
    topics.LEARNERS: "The LMS's learner snapshots (bare JSON, key = learner_id); the newest "
    "`updated_at` wins. desk keeps them and matches tickets to learners.",
    topics.INTAKE: "intake: normalised submissions.",
    topics.TICKETS: "desk: the Ticket aggregate's life.",
    topics.ROUTING: "routing: triage, assignment and queueing (key = ticket id); agent.status, "
    "each agent's presence and load against capacity (key = agent id, the newest wins).",
    topics.NOTIFY: "notify: what reached learners and what did not.",
    topics.SURVEY: "survey: requests, answers and low scores.",
    topics.KNOWLEDGE: "knowledge: articles suggested for tickets, again once their category is known or "
    "corrected (key = ticket id), articles "
    "published and archived (key = article id).",
    topics.ALERTS: "incident: the early warning's alerts (key = alert id).",
    topics.INCIDENTS: "incident: incidents opened, updated and resolved, tickets linked and "
    "unlinked, per-ticket resolutions and per-learner notices (key = incident id).",
    topics.REMEDIES: "desk (complaint cases) and incident (compensation batches): approved "
    "remedies for the systems that carry them out (refund.requested: payments; extension.granted, "
    "lessons.granted: the LMS; coupon.issued: the shop); key = ticket id, one event per remedy id.",
    topics.REMEDY_ACKS: "Other systems' answers to remedies: remedy.acknowledged or "
    "remedy.rejected with the remedy id (key = ticket id); desk and incident each apply the "
    "answers to their own remedies.",
    topics.COURSE_CHANGES: "Course operations' system: changes the company makes to a course "
    "(course_change.submitted, key = course id); incident tells every enrolled learner once.",
    topics.PEOPLE: "desk: the people who work tickets (person.changed, key = agent id; the "
    "newest wins): role, teams, active and their API tokens' SHA-256 for other services' "
    "read models; agent.seen (key = agent id), an agent using the workspace, which keeps "
    "their presence in routing alive; agent.change_requested (key = agent id), a supervisor "
    "setting an agent online/offline or their capacity from the board, for routing to apply.",
}
SCHEMAS = "#/components/schemas/{name}"
CORRELATION = {"location": "$message.payload#/correlation_id"}


def document() -> dict[str, Any]:
    by_topic: dict[str, list[type[EventData]]] = defaultdict(list)
    for model in EVENT_TYPES.values():
        by_topic[model.TOPIC].append(model)
    models = [m for ms in by_topic.values() for m in ms]
    all_refs, schemas = msgspec.json.schema_components(
        [*(Envelope[m] for m in models), LearnerSnapshot],  # type: ignore[valid-type]
        ref_template=SCHEMAS,
    )
    *refs, snapshot_ref = all_refs
    inbound = InboundSubmission.model_json_schema(ref_template=SCHEMAS.replace("name", "model"))
    schemas |= inbound.pop("$defs", {}) | {"InboundSubmission": inbound}
    messages: dict[str, Any] = {
        "InboundSubmission": {
            "title": "InboundSubmission",
            "payload": {"$ref": SCHEMAS.format(name="InboundSubmission")},
        },
        "LearnerSnapshot": {
            "title": "LearnerSnapshot",
            "summary": "What the LMS knows about a learner now.",
            "payload": snapshot_ref,
        },
    }
    for model, ref in zip(models, refs, strict=True):
        messages[model.TYPE] = {
            "title": f"{model.TYPE} v{model.VERSION}",
            "summary": (model.__doc__ or "").strip().split("\n\n")[0] or None,
            "correlationId": CORRELATION,
            "payload": ref,
        }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, names, action in [
        (topics.INBOUND, ["InboundSubmission"], "receive"),
        (topics.LEARNERS, ["LearnerSnapshot"], "receive"),
        *((t, [m.TYPE for m in ms], "send") for t, ms in sorted(by_topic.items())),
    ]:
        channels[topic] = {
            "address": topic,
            "description": DESCRIPTIONS.get(topic),
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "servers": [{"$ref": "#/servers/development"}],
            "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.4.0"}},
        }
        operations[topic] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{topic}"},
            "messages": [{"$ref": f"#/channels/{topic}/messages/{n}"} for n in names],
        }
    return _plain(
        {
            "asyncapi": "3.0.0",
            "info": {"title": "careloop events", "version": "1"},
            "defaultContentType": "application/json",
            "servers": {
                "development": {"host": "localhost", "protocol": "kafka"},
            },
            "channels": channels,
            "operations": operations,
            "components": {"messages": messages, "schemas": schemas},
        }
    )


def _plain(value: Any) -> Any:
    """JSON values only, without nulls (msgspec gives a tuple default as a tuple)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def main() -> None:
    print(json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    main()

"""The fault suite's arithmetic: what counts as lost, duplicated, over capacity and recovered,
and the inputs it sends."""

import json
import random

from chaos.domain import (
    ONE_MIB,
    Accepted,
    Operation,
    Ticket,
    broken,
    confirmations_per_ticket,
    encode_body,
    excess_load,
    exit_code,
    fuzzed,
    marker,
    nasty_submission,
    operations,
    parse_marker,
    poison_records,
    resent_confirmations,
    submission,
    tally,
)


def outcome(**overrides):  # type: ignore[no-untyped-def]
    args = {
        "scenario": "s",
        "sent": 3,
        "accepted": [Accepted(0, 10.0, "http"), Accepted(1, 11.0, "kafka")],
        "tickets": [Ticket("a", "CL-000001", 0, 12.0), Ticket("b", "CL-000002", 1, 13.0)],
        "confirmations": {"CL-000001": 1, "CL-000002": 1},
        "over_capacity": 0,
        "server_errors": 0,
        "fault_end": 12.5,
    }
    return tally(**(args | overrides))


def test_a_marker_is_found_again_in_a_subject_and_only_for_its_run() -> None:
    subject = submission("kill-desk-ab12cd", 7)["subject"]
    assert parse_marker(subject, "kill-desk-ab12cd") == 7
    assert parse_marker(subject, "kill-desk-ffffff") is None
    assert parse_marker("no marker here", "kill-desk-ab12cd") is None
    assert marker("kill-desk-ab12cd", 7) in subject


def test_an_inbound_submission_carries_source_and_external_id() -> None:
    body = submission("r", 1, source="chaos")
    assert (body["source"], body["external_id"]) == ("chaos", "chaos-r-1")
    assert "source" not in submission("r", 1)


def test_every_accepted_submission_with_a_ticket_is_a_clean_outcome() -> None:
    o = outcome()
    assert (o.accepted, o.lost, o.duplicated, o.stalled, o.unconfirmed) == (2, 0, 0, 0, 0)
    assert not o.failed


def test_an_accepted_submission_without_a_ticket_is_lost() -> None:
    o = outcome(tickets=[Ticket("a", "CL-000001", 0, 12.0)])
    assert o.lost == 1 and o.failed


def test_a_loss_before_the_broker_went_down_is_the_brokers_not_careloops() -> None:
    o = outcome(tickets=[], confirmations={}, broker_down_at=10.5)
    assert (o.broker_lost, o.lost) == (1, 1)
    assert "lost: 1 kafka" in o.notes[-1]


def test_a_ticket_stored_before_the_broker_went_down_and_never_assigned_is_the_brokers() -> None:
    tickets = [Ticket("a", "CL-1", 0, None, created_at=10.2), Ticket("b", "CL-2", 1, None, 11.0)]
    o = outcome(tickets=tickets, confirmations={}, broker_down_at=10.5)
    assert (o.broker_lost, o.stalled, o.unconfirmed) == (1, 1, 1)


def test_two_tickets_for_one_submission_count_as_a_duplicate() -> None:
    o = outcome(tickets=[Ticket("a", "CL-1", 0, 12.0), Ticket("c", "CL-3", 0, 12.0)])
    assert o.duplicated == 1


def test_two_confirmations_for_one_ticket_count_as_a_duplicate() -> None:
    assert outcome(confirmations={"CL-000001": 2, "CL-000002": 1}).duplicated == 1


def test_confirmations_of_other_runs_tickets_are_not_counted() -> None:
    assert outcome(confirmations={"CL-000001": 1, "CL-000002": 1, "CL-9": 4}).duplicated == 0


def test_a_ticket_never_assigned_is_stalled_and_one_never_confirmed_is_unconfirmed() -> None:
    o = outcome(
        tickets=[Ticket("a", "CL-000001", 0, None), Ticket("b", "CL-000002", 1, 13.0)],
        confirmations={"CL-000002": 1},
    )
    assert (o.stalled, o.unconfirmed) == (1, 1)


def test_recovery_runs_from_the_fault_end_to_the_first_assignment_after_it() -> None:
    assert outcome().recovery_seconds == 13.0 - 12.5
    assert outcome(fault_end=20.0).recovery_seconds is None


def test_over_capacity_or_a_server_error_fails_the_scenario() -> None:
    assert outcome(over_capacity=1).failed
    assert outcome(server_errors=1).failed
    assert exit_code([outcome(), outcome(server_errors=1)]) == 1
    assert exit_code([outcome()]) == 0


def test_a_scenario_that_could_not_run_fails() -> None:
    assert broken("broker-restart", "TimeoutError").failed


def test_excess_load_is_the_fullest_agents_load_above_capacity() -> None:
    capacities = {"t1": 5, "t2": 5}
    assert excess_load({"t1": 6, "t2": 2}, capacities) == 1
    assert excess_load({"t1": 5, "t2": 0}, capacities) == 0
    assert excess_load({}, capacities) == 0


def test_confirmations_are_counted_per_ticket_number_one_per_message_id() -> None:
    headers = [
        ("confirmation", "CL-1", "<a@careloop>"),
        ("confirmation", "CL-1", "<b@careloop>"),
        ("confirmation", "CL-1", "<b@careloop>"),
        ("reply", "CL-1", "<c@careloop>"),
        (None, None, None),
    ]
    assert confirmations_per_ticket(headers) == {"CL-1": 2}


def test_copies_of_one_confirmation_are_counted_as_resent_not_duplicated() -> None:
    headers = [
        ("confirmation", "CL-1", "<a@careloop>"),
        ("confirmation", "CL-1", "<a@careloop>"),
        ("confirmation", "CL-2", "<b@careloop>"),
    ]
    assert confirmations_per_ticket(headers) == {"CL-1": 1, "CL-2": 1}
    assert resent_confirmations(headers) == 1


def test_poison_includes_a_tombstone_and_a_record_over_one_mebibyte() -> None:
    records = {p.name: p for p in poison_records("r")}
    assert records["tombstone"].value is None
    assert len(records["over-1-MiB"].value or b"") > ONE_MIB
    assert b"\\ud800" in (records["lone-surrogate"].value or b"")


def test_hostile_submissions_keep_their_marker_so_an_accepted_one_can_be_traced() -> None:
    body = nasty_submission("r", 5, random.Random(1))
    assert parse_marker(str(body["subject"]), "r") == 5


def test_operations_are_read_from_an_openapi_document() -> None:
    spec = {
        "paths": {
            "/v1/tickets/{ticket_id}/replies": {
                "post": {
                    "parameters": [{"name": "ticket_id", "in": "path"}],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/R"}}
                        }
                    },
                }
            },
            "/v1/agent/tickets": {"get": {"parameters": [{"name": "limit", "in": "query"}]}},
        },
        "components": {"schemas": {"R": {"properties": {"body": {"type": "string"}}}}},
    }
    assert operations(spec) == [
        Operation("POST", "/v1/tickets/{ticket_id}/replies", (), ("body",), "application/json"),
        Operation("GET", "/v1/agent/tickets", ("limit",), None),
    ]


def test_a_fuzzed_request_fills_every_path_parameter_and_encodes_surrogates() -> None:
    op = Operation("POST", "/v1/surveys/{token}", ("q",), ("overall",))
    for seed in range(50):
        path, body = fuzzed(op, random.Random(seed))
        assert path.startswith("/v1/surveys/") and "{token}" not in path
        path.encode("ascii")  # every byte percent-encoded, lone surrogates included
        assert body is not None
        json.loads(body)


def test_a_form_body_percent_encodes_lone_surrogates() -> None:
    assert encode_body({"answer": "\ud800", "n": 1}, "application/x-www-form-urlencoded") == (
        b"answer=%ED%A0%80&n=1"
    )

"""Which address a request is limited by: X-Forwarded-For only through trusted proxies."""

import ipaddress

from fastapi import Request

from shared.ratelimit import client_address

PROXY = (ipaddress.ip_network("10.0.0.0/8"),)


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 40000), "headers": headers})


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address(_request("203.0.113.9", "198.51.100.1"), trusted_proxies=()) == (
        "203.0.113.9"
    )


def test_a_peer_that_is_not_a_trusted_proxy_cannot_pick_its_address() -> None:
    request = _request("203.0.113.9", "198.51.100.1")
    assert client_address(request, trusted_proxies=PROXY) == "203.0.113.9"


def test_through_a_trusted_proxy_the_forwarded_client_is_the_client() -> None:
    request = _request("10.0.0.2", "198.51.100.1")
    assert client_address(request, trusted_proxies=PROXY) == "198.51.100.1"


def test_only_the_hops_a_trusted_proxy_added_are_believed() -> None:
    # The client wrote 1.1.1.1 itself; the proxy appended the address it saw.
    request = _request("10.0.0.2", "1.1.1.1, 198.51.100.1")
    assert client_address(request, trusted_proxies=PROXY) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop() -> None:
    request = _request("10.0.0.2", "198.51.100.1, 10.0.0.7")
    assert client_address(request, trusted_proxies=PROXY) == "198.51.100.1"


def test_a_forwarded_value_that_is_not_an_address_is_not_believed() -> None:
    request = _request("10.0.0.2", "unknown")
    assert client_address(request, trusted_proxies=PROXY) == "10.0.0.2"


def test_an_ipv6_client_is_limited_by_its_64_prefix() -> None:
    first = client_address(_request("2001:db8:1:2::1"), trusted_proxies=())
    other = client_address(_request("2001:db8:1:2:ffff::9"), trusted_proxies=())
    assert first == other == "2001:db8:1:2::/64"


def test_an_ipv4_mapped_ipv6_peer_is_its_ipv4_address() -> None:
    assert client_address(_request("::ffff:198.51.100.1"), trusted_proxies=()) == "198.51.100.1"

"""The demo as users run it: sample systems and gateway as separate processes, real HTTP between them."""

from __future__ import annotations

import httpx

from demo.run import demo_jwt
from demo.secrets import DemoSecrets


def test_demo_answers_a_customer_360_over_real_http(demo_gateway: str, demo_secrets: DemoSecrets) -> None:
    query = """{ customer(number: "100001") { name email creditLimit { amount currency }
      orders(first: 3) { edges { node { number lines { product { name stock { available } } } } } }
      interactions(first: 2) { edges { node { kind } } } } }"""
    token = demo_jwt(demo_secrets, role="sales")
    r = httpx.post(f"{demo_gateway}/graphql", json={"query": query}, timeout=30,
                   headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    body = r.json()
    assert "errors" not in body, body
    customer = body["data"]["customer"]
    assert customer["name"] and customer["creditLimit"]["currency"] in ("USD", "EUR")


def test_demo_serves_graphiql(demo_gateway: str) -> None:
    r = httpx.get(f"{demo_gateway}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert r.status_code == 200 and "GraphiQL" in r.text


def test_demo_refuses_callers_without_credentials(demo_gateway: str) -> None:
    r = httpx.post(f"{demo_gateway}/graphql", json={"query": "{ customers(first: 1) { edges { cursor } } }"},
                   timeout=10)
    assert r.status_code == 401
    health = httpx.post(f"{demo_gateway}/graphql", json={"query": "{ health { status } }"}, timeout=10)
    assert health.json() == {"data": {"health": {"status": "ok"}}}


def test_demo_is_ready(demo_gateway: str) -> None:
    r = httpx.get(f"{demo_gateway}/readyz", timeout=10)
    assert r.status_code == 200, r.text

"""The demo as users run it: sample systems and gateway as separate processes, real HTTP between them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from demo.run import _wait_for_port, demo_jwt
from demo.secrets import DemoSecrets
from tests.e2e.conftest import _free_base_port


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


def test_stopping_the_demo_stops_its_sample_systems(tmp_path: Path) -> None:
    """`gateway demo` answers SIGTERM (a service manager, `kill`) by stopping everything it started."""
    port = _free_base_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--customers", "50", "--orders", "200", "--items", "20",
         "--port", str(port), "--data-dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(port, demo, timeout=120)
        systems = [port + 101, port + 102, port + 103]
        assert all(_listening(p) for p in systems)
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_listening(p) for p in systems) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_listening(p) for p in systems)
    finally:
        if demo.poll() is None:
            demo.kill()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0

"""The demo as users run it: sample systems and gateway as separate processes, real HTTP between them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from demo.run import DemoOptions, _wait_for_port, demo_jwt, prepare, sample_systems
from demo.secrets import DemoSecrets, load_or_create


def _free_base_port() -> int:
    """A port P such that P and P+101..P+103 are free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 60000:
            continue
        ports = [base, base + 101, base + 102, base + 103]
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo_secrets(demo_dir: Path) -> DemoSecrets:
    return load_or_create(demo_dir)


@pytest.fixture(scope="module")
def demo_gateway(demo_dir: Path) -> Iterator[str]:
    data = demo_dir
    options = DemoOptions(seed=5, customers=200, orders=1_500, items=40, port=_free_base_port(), data_dir=data)
    import asyncio

    config = asyncio.run(prepare(options, Console(quiet=True)))
    env = {**os.environ, "GATEWAY_CONFIG": str(config), "DEMO_DATA_DIR": str(data)}
    with sample_systems(options):
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(options.port)], env=env)
        try:
            _wait_for_port(options.port, gateway)
            yield f"http://127.0.0.1:{options.port}"  # the demo's credentials are under `data`
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)


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

"""Kill the gateway with SIGKILL between two steps of placeOrder (the test-only fault point
GATEWAY_FAULT_KILL_AFTER_STEP): after a restart on the same gateway database the saga completes by itself,
with no duplicate order, no lost CRM interaction and the stock allocated once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from demo.run import DemoOptions, _wait_for_port, demo_jwt, gateway_toml, prepare, sample_systems
from demo.secrets import DemoSecrets, load_or_create
from operations.saga import KILL_AFTER_STEP
from tests.e2e.conftest import _free_base_port
from tests.integration.expected import linked_customer
from tests.integration.test_operations import PLACE, Erp, order_input

SAGA = "query($id: ID!) { saga(id: $id) { state steps { name state attempts } } }"

#: Short leases and a quick resume loop, so a dead process's saga and client key are taken over in seconds.
OPERATIONS = """
[operations]
resume_interval_s = 0.2
lease_s = 1
retry_base_s = 0.1
inline_backoff_s = 0.01

[idempotency]
lease_s = 1
"""


@dataclass(frozen=True)
class SampleSystems:
    """The seeded ERP and the sample CRM, supplier and logistics systems running as processes."""

    options: DemoOptions
    secrets: DemoSecrets
    erp: Erp

    def interactions(self, crm_id: str, subject_part: str) -> list[dict[str, Any]]:
        """The customer's "order" interactions as the sample CRM lists them (not through the gateway)."""
        with httpx.Client(base_url=f"http://127.0.0.1:{self.options.port_of('crm')}", timeout=10) as crm:
            token = crm.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_id": self.secrets.crm_client_id,
                "client_secret": self.secrets.crm_client_secret}).json()["access_token"]
            page = crm.get(f"/api/v1/customers/{crm_id}/interactions", params={"kind": "order", "limit": 200},
                           headers={"authorization": f"Bearer {token}"})
        assert page.status_code == 200, page.text
        return [i for i in page.json()["data"] if subject_part in i.get("subject", "")]


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleSystems]:
    data = Path(tmp_path_factory.mktemp("saga-kill"))
    options = DemoOptions(seed=11, customers=300, orders=4_000, items=60, port=_free_base_port(), data_dir=data)
    asyncio.run(prepare(options, Console(quiet=True)))  # seeds the ERP, stores the links in data/gateway.db
    with sample_systems(options):
        yield SampleSystems(options, load_or_create(data), Erp(data / "erp.db"))


@dataclass(frozen=True)
class Gateway:
    """How to start the gateway as a process on its own database (a copy of the demo's, with its links)."""

    port: int
    env: dict[str, str]
    logs: Path

    @contextmanager
    def running(self, name: str, *, kill_after_step: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
        env = dict(self.env)
        if kill_after_step is not None:
            env[KILL_AFTER_STEP] = kill_after_step
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)],
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_for_port(self.port, process)
                yield process
            finally:
                if process.poll() is None:
                    process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"


@pytest.fixture
def gateway(systems: SampleSystems, tmp_path: Path) -> Gateway:
    options = replace(systems.options, data_dir=tmp_path, erp_url=systems.options.erp)
    (tmp_path / "gateway.db").write_bytes((systems.options.data_dir / "gateway.db").read_bytes())
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(options, systems.secrets) + OPERATIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_CONFIG"] = str(config)
    return Gateway(systems.options.port, env, tmp_path)


@dataclass(frozen=True)
class Arranged:
    customer: str
    crm_id: str
    sku: str
    warehouse: str
    orders_before: int
    last_before: int


def arrange(systems: SampleSystems, available: int) -> Arranged:
    """A customer who can order (active, credit, billed in USD) and an item with `available` units, none allocated."""
    c = linked_customer(systems.options.world, min_orders=1)
    erp = systems.erp
    erp.give_credit(c.erp_number)
    erp.run("UPDATE CUSMAS SET CMCURR = 'USD' WHERE TRIM(CMCUNO) = ?", c.erp_number)
    sku, warehouse, _ = erp.stock_item()
    erp.set_available(sku, warehouse, available)
    count, last = erp.one("SELECT COUNT(*), MAX(OHORNO) FROM ORDHDR")
    return Arranged(c.erp_number, c.crm_id, sku, warehouse, int(count), int(last))


def saga_rows(db: Path) -> list[tuple[str, str, list[tuple[str, str, int]], int]]:
    """Every saga in the gateway database: (id, state, [(step, state, attempts)], unpublished outbox rows)."""
    with sqlite3.connect(db) as conn:
        sagas = conn.execute("SELECT id, state FROM sagas ORDER BY created_ms").fetchall()
        return [(saga_id, state,
                 conn.execute("SELECT name, state, attempts FROM saga_steps WHERE saga_id = ? ORDER BY position",
                              (saga_id,)).fetchall(),
                 conn.execute("SELECT COUNT(*) FROM outbox WHERE saga_id = ? AND published_ms IS NULL",
                              (saga_id,)).fetchone()[0])
                for saga_id, state in sagas]


def eventually(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Wait for something the gateway does in the background, up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not after {timeout}s: {what}"
        time.sleep(0.1)


def wait_for_saga(url: str, token: str, saga_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
    """The saga as the `saga` admin query shows it, once it reaches `state` (it is resumed in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.post(url, json={"query": SAGA, "variables": {"id": saga_id}},
                          headers={"authorization": f"Bearer {token}"}, timeout=10).json()
        assert "errors" not in body, body
        saga: dict[str, Any] = body["data"]["saga"]
        if saga["state"] == state or time.monotonic() > deadline:
            assert saga["state"] == state, f"saga still {saga} after {timeout}s"
            return saga
        time.sleep(0.1)


def place_and_die(gateway: Gateway, body: dict[str, Any], headers: dict[str, str], step: str) -> None:
    """Send placeOrder to a gateway that kills itself after `step`: no answer, and the process died by SIGKILL."""
    with gateway.running(f"killed-after-{step}", kill_after_step=step) as process:
        with pytest.raises(httpx.TransportError):
            httpx.post(gateway.url, json=body, headers=headers, timeout=30)
        assert process.wait(timeout=10) == -signal.SIGKILL


def test_killed_after_the_erp_write_the_restarted_gateway_records_the_interaction_once(
        systems: SampleSystems, gateway: Gateway, tmp_path: Path) -> None:
    a = arrange(systems, available=6)
    erp = systems.erp
    body = {"query": PLACE, "variables": order_input(a.customer, a.sku, a.warehouse, 2, reference="PO-KILL-1")}
    headers = {"authorization": f"Bearer {demo_jwt(systems.secrets, 'sales')}", "Idempotency-Key": "kill-erp-1"}

    place_and_die(gateway, body, headers, "write_erp_order")

    # The ERP transaction committed: one new order, allocated; the CRM has not heard of it.
    assert erp.one("SELECT COUNT(*) FROM ORDHDR")[0] == a.orders_before + 1
    number, status, customer = erp.one("SELECT OHORNO, OHSTAT, TRIM(OHCUNO) FROM ORDHDR ORDER BY OHORNO DESC")
    assert number > a.last_before and (status, customer) == ("A", a.customer)
    assert erp.balance(a.sku, a.warehouse) == (6, 2)
    assert systems.interactions(a.crm_id, f"Order {number}") == []
    ((saga_id, state, steps, unpublished),) = saga_rows(tmp_path / "gateway.db")
    assert state == "RUNNING"
    assert steps[0] == ("write_erp_order", "DONE", 1)
    assert steps[1][0] == "record_crm_interaction" and steps[1][1] != "DONE"
    assert unpublished > 0  # killed before the ERP write's changes were published

    with gateway.running("restarted"):
        saga = wait_for_saga(gateway.url, demo_jwt(systems.secrets, "ops"), saga_id, "COMPLETED")
        assert [(s["name"], s["state"]) for s in saga["steps"]] == [("write_erp_order", "DONE"),
                                                                    ("record_crm_interaction", "DONE")]
        assert saga["steps"][0]["attempts"] == 1  # the ERP write was not run again
        recorded = systems.interactions(a.crm_id, f"Order {number}")
        assert len(recorded) == 1 and "PO-KILL-1" in recorded[0]["subject"]
        # The client's retry with the same key gets the order that was placed, not a second one.
        retry = httpx.post(gateway.url, json=body, headers=headers, timeout=30)
        assert retry.status_code == 200, retry.text
        payload = retry.json()["data"]["placeOrder"]
        assert payload["userErrors"] == []
        assert payload["order"]["number"] == str(number) and payload["order"]["status"] == "ALLOCATED"
        assert payload["saga"]["id"] == saga_id and payload["saga"]["state"] == "COMPLETED"
        assert len(systems.interactions(a.crm_id, f"Order {number}")) == 1

    assert erp.one("SELECT COUNT(*) FROM ORDHDR")[0] == a.orders_before + 1
    assert erp.balance(a.sku, a.warehouse) == (6, 2)
    ((_, state, _, unpublished),) = saga_rows(tmp_path / "gateway.db")
    assert (state, unpublished) == ("COMPLETED", 0)


def test_killed_after_the_crm_interaction_the_restarted_gateway_sends_nothing_again(
        systems: SampleSystems, gateway: Gateway, tmp_path: Path) -> None:
    a = arrange(systems, available=5)
    erp = systems.erp
    body = {"query": PLACE, "variables": order_input(a.customer, a.sku, a.warehouse, 3, reference="PO-KILL-2")}
    headers = {"authorization": f"Bearer {demo_jwt(systems.secrets, 'sales')}", "Idempotency-Key": "kill-crm-2"}

    place_and_die(gateway, body, headers, "record_crm_interaction")

    assert erp.one("SELECT COUNT(*) FROM ORDHDR")[0] == a.orders_before + 1
    (number,) = erp.one("SELECT MAX(OHORNO) FROM ORDHDR")
    assert erp.balance(a.sku, a.warehouse) == (5, 3)
    assert len(systems.interactions(a.crm_id, f"Order {number}")) == 1
    ((saga_id, _, steps, unpublished),) = saga_rows(tmp_path / "gateway.db")
    assert steps == [("write_erp_order", "DONE", 1), ("record_crm_interaction", "DONE", 1)]
    assert unpublished > 0  # the interaction's change was logged but not published

    with gateway.running("restarted"):
        saga = wait_for_saga(gateway.url, demo_jwt(systems.secrets, "ops"), saga_id, "COMPLETED")
        # Nothing was tried again: each step ran once, before the kill.
        assert [(s["name"], s["state"], s["attempts"]) for s in saga["steps"]] == [
            ("write_erp_order", "DONE", 1), ("record_crm_interaction", "DONE", 1)]
        # What the dead process logged but did not publish is published by the restarted one.
        eventually(lambda: saga_rows(tmp_path / "gateway.db")[0][3] == 0, "the outbox is published")
        retry = httpx.post(gateway.url, json=body, headers=headers, timeout=30)
        assert retry.status_code == 200, retry.text
        payload = retry.json()["data"]["placeOrder"]
        assert payload["order"]["number"] == str(number)
        assert payload["saga"]["id"] == saga_id and payload["saga"]["state"] == "COMPLETED"

    assert len(systems.interactions(a.crm_id, f"Order {number}")) == 1
    assert erp.one("SELECT COUNT(*) FROM ORDHDR")[0] == a.orders_before + 1
    assert erp.balance(a.sku, a.warehouse) == (5, 3)
    ((_, state, steps, unpublished),) = saga_rows(tmp_path / "gateway.db")
    assert (state, unpublished) == ("COMPLETED", 0)
    assert steps[1] == ("record_crm_interaction", "DONE", 1)

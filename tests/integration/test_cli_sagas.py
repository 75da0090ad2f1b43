"""`gateway sagas list` and `gateway sagas resume` on a gateway database holding sagas a gateway ran."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp
from typer.testing import CliRunner, Result

from demo.secrets import DemoSecrets
from demo.world import World
from gateway.cli import app
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_operations import PLACE, Erp, order_input

#: Quick retries, and no background round while the test arranges (it would resume sagas itself).
OPERATIONS = {"retry_base_s": 0.05, "inline_backoff_s": 0.01, "resume_interval_s": 3600}


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def copy_of_erp(erp_sqlite_url: str, folder: Path) -> Erp:
    copy = folder / "erp.db"
    shutil.copyfile(erp_sqlite_url.removeprefix("sqlite+aiosqlite:///"), copy)
    return Erp(copy)


@dataclass(frozen=True)
class Order:
    customer: str
    crm_id: str
    sku: str
    warehouse: str


def orderable(world: World, erp: Erp, available: int) -> Order:
    """A customer who may order (active, credit, billed in USD) and an item with `available` units."""
    c = linked_customer(world, min_orders=1)
    erp.give_credit(c.erp_number)
    erp.run("UPDATE CUSMAS SET CMCURR = 'USD' WHERE TRIM(CMCUNO) = ?", c.erp_number)
    sku, warehouse, _ = erp.stock_item()
    erp.set_available(sku, warehouse, available)
    return Order(c.erp_number, c.crm_id, sku, warehouse)


async def place(gw: Harness, order: Order, quantity: int) -> dict[str, Any]:
    body = await gw.query(PLACE, order_input(order.customer, order.sku, order.warehouse, quantity),
                          token=gw.jwt("sales"))
    return body


def config_file(folder: Path, secrets: DemoSecrets, erp: Erp, crm_url: str = "http://127.0.0.1:9") -> Path:
    """The configuration the CLI reads: the gateway's database, the ERP copy and where the CRM listens."""
    path = folder / "cli.toml"
    path.write_text(f"""database_url = "sqlite+aiosqlite:///{folder / 'gateway.db'}"
[auth]
jwt_secret = "{secrets.jwt_secret}"
[operations]
retry_base_s = 0.05
inline_backoff_s = 0.01
[sources.erp]
url = "sqlite+aiosqlite:///{erp.path}"
[sources.crm]
base_url = "{crm_url}"
[sources.crm.auth]
kind = "oauth2_client_credentials"
client_id = "{secrets.crm_client_id}"
client_secret = "{secrets.crm_client_secret}"
""")
    return path


@dataclass(frozen=True)
class Sagas:
    """A gateway database with one saga in each of three states, and the CLI configured for it."""

    config: Path
    completed: str
    rejected: str
    attention: str


@pytest.fixture(scope="module")
async def sagas(world: World, erp_sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Sagas:
    folder = Path(tmp_path_factory.mktemp("cli-sagas"))
    erp = copy_of_erp(erp_sqlite_url, folder)
    order = orderable(world, erp, available=5)
    # One attempt only: a CRM step that fails once needs a person's attention.
    async with running_gateway(world, f"sqlite+aiosqlite:///{erp.path}", folder / "gateway.db",
                               operations={**OPERATIONS, "max_attempts": 1}) as gw:
        completed = (await place(gw, order, 1))["data"]["placeOrder"]["saga"]
        rejected = (await place(gw, order, 99))["data"]["placeOrder"]["saga"]
        gw.faults["crm"].outage = True
        attention = (await place(gw, order, 1))["data"]["placeOrder"]["saga"]
        gw.faults["crm"].outage = False
    assert [s["state"] for s in (completed, rejected, attention)] == ["COMPLETED", "REJECTED", "NEEDS_ATTENTION"]
    return Sagas(config_file(folder, gw.secrets, erp), completed["id"], rejected["id"], attention["id"])


@pytest.fixture
def configured(sagas: Sagas, monkeypatch: pytest.MonkeyPatch) -> Sagas:
    monkeypatch.setenv("GATEWAY_CONFIG", str(sagas.config))
    monkeypatch.setenv("COLUMNS", "250")  # rich's table would otherwise wrap the ids at 80 columns
    return sagas


def test_sagas_list_shows_every_saga_with_its_state_and_steps(configured: Sagas) -> None:
    result = cli("sagas", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.count("│") > 2}
    assert set(rows) == {configured.completed, configured.rejected, configured.attention}
    assert "COMPLETED" in rows[configured.completed]
    assert "write_erp_order=DONE, record_crm_interaction=DONE" in rows[configured.completed]
    assert "REJECTED" in rows[configured.rejected] and "write_erp_order=FAILED" in rows[configured.rejected]
    assert "NEEDS_ATTENTION" in rows[configured.attention]
    assert "gave up after 1 attempts" in rows[configured.attention]


def test_sagas_list_json_is_one_object_per_line(configured: Sagas) -> None:
    result = cli("sagas", "list", "--json")
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.output.splitlines()]
    # Newest first.
    assert [(s["id"], s["kind"], s["state"]) for s in listed] == [
        (configured.attention, "placeOrder", "NEEDS_ATTENTION"), (configured.rejected, "placeOrder", "REJECTED"),
        (configured.completed, "placeOrder", "COMPLETED")]
    assert listed[2]["steps"] == [{"name": "write_erp_order", "state": "DONE", "attempts": 1},
                                  {"name": "record_crm_interaction", "state": "DONE", "attempts": 1}]
    assert listed[1]["error"]["code"] == "INSUFFICIENT_STOCK"
    assert [s["state"] for s in listed[0]["steps"]] == ["DONE", "RETRYING"]


def test_sagas_list_filters_by_state(configured: Sagas) -> None:
    result = cli("sagas", "list", "--state", "NEEDS_ATTENTION", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == [configured.attention]
    both = cli("sagas", "list", "--state", "completed", "--state", "REJECTED", "--json")
    assert both.exit_code == 0, both.output
    assert {json.loads(line)["id"] for line in both.output.splitlines()} == {configured.completed,
                                                                             configured.rejected}


def test_sagas_list_refuses_an_unknown_state(configured: Sagas) -> None:
    result = cli("sagas", "list", "--state", "DONE")
    assert result.exit_code == 2
    assert "--state must be one of" in result.output and "NEEDS_ATTENTION" in result.output


def test_sagas_resume_exits_1_while_a_saga_needs_attention(configured: Sagas) -> None:
    result = cli("sagas", "resume")
    assert result.exit_code == 1, result.output
    assert "resumed 0 saga(s)" in result.output
    assert "1 saga(s) need attention" in result.output


def test_sagas_list_through_python_dash_m(configured: Sagas) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "sagas", "list", "--json"],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 3


@asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    """`app` (the sample CRM the harness used) listening on a loopback port, for the CLI's own HTTP client."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the CRM did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def interactions(crm: ASGIApp, secrets: DemoSecrets, crm_id: str, subject_part: str) -> list[Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=crm), base_url="http://crm.test") as client:
        token = (await client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": secrets.crm_client_id,
            "client_secret": secrets.crm_client_secret})).json()["access_token"]
        page = await client.get(f"/api/v1/customers/{crm_id}/interactions", params={"kind": "order", "limit": 200},
                                headers={"authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    return [i for i in page.json()["data"] if subject_part in i.get("subject", "")]


async def test_sagas_resume_completes_a_saga_the_crm_was_down_for(world: World, erp_sqlite_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    erp = copy_of_erp(erp_sqlite_url, tmp_path)
    order = orderable(world, erp, available=5)
    async with running_gateway(world, f"sqlite+aiosqlite:///{erp.path}", tmp_path / "gateway.db",
                               operations=OPERATIONS) as gw:
        gw.faults["crm"].outage = True
        payload = (await place(gw, order, 2))["data"]["placeOrder"]
        crm = gw.upstream["crm"].inner.app
    assert payload["saga"]["state"] == "PENDING", payload
    number, saga_id = payload["order"]["number"], payload["saga"]["id"]
    gw.faults["crm"].outage = False
    assert await interactions(crm, gw.secrets, order.crm_id, f"Order {number}") == []

    async with served(crm) as crm_url:
        monkeypatch.setenv("GATEWAY_CONFIG", str(config_file(tmp_path, gw.secrets, erp, crm_url)))
        # The CLI runs its own event loop: in a thread, while this one serves the CRM.
        result = await asyncio.to_thread(cli, "sagas", "resume")
        assert result.exit_code == 0, result.output
        assert "resumed 1 saga(s)" in result.output and "COMPLETED=1" in result.output
        listed = await asyncio.to_thread(cli, "sagas", "list", "--json")
        (saga,) = [json.loads(line) for line in listed.output.splitlines()]
        assert (saga["id"], saga["state"]) == (saga_id, "COMPLETED")
        assert [s["state"] for s in saga["steps"]] == ["DONE", "DONE"]
        again = await asyncio.to_thread(cli, "sagas", "resume")
        assert again.exit_code == 0 and "resumed 0 saga(s)" in again.output, again.output

    assert len(await interactions(crm, gw.secrets, order.crm_id, f"Order {number}")) == 1
    assert erp.one("SELECT COUNT(*) FROM ORDHDR WHERE OHORNO = ?", int(number)) == (1,)
    assert erp.balance(order.sku, order.warehouse) == (5, 2)

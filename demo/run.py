"""Start the whole demo: seed the ERP, start the CRM and partner systems as processes, serve the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from demo.secrets import DemoSecrets, load_or_create
from demo.world import Sizes, World


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seed: int = 42
    customers: int = 5_000
    orders: int = 50_000
    items: int = 500
    erp_url: str | None = None
    port: int = 8000
    data_dir: Path = Path("demo-data")

    @property
    def world(self) -> World:
        return World(seed=self.seed, sizes=Sizes(customers=self.customers, orders=self.orders, items=self.items))

    @property
    def erp(self) -> str:
        return self.erp_url or f"sqlite+aiosqlite:///{self.data_dir / 'erp.db'}"

    def port_of(self, system: str) -> int:
        return self.port + {"crm": 101, "supplier": 102, "logistics": 103}[system]


def gateway_toml(options: DemoOptions, secrets: DemoSecrets) -> str:
    """The gateway configuration for the demo systems (it holds their generated credentials)."""
    return f"""# Written by `gateway demo`; holds this checkout's generated demo credentials.
database_url = "sqlite+aiosqlite:///{options.data_dir / 'gateway.db'}"

[server]
host = "127.0.0.1"
port = {options.port}
graphiql = true

[auth]
jwt_issuer = "gateway-demo"
jwt_audience = "gateway"
jwt_secret = "{secrets.jwt_secret}"

[limits]
# Generous, so the benchmark can drive the demo from one principal; the defaults suit production.
rate_per_second = 5000
rate_burst = 10000

[audit]
spool_path = "{options.data_dir / 'audit-spool.jsonl'}"

[sources.erp]
url = "{options.erp}"
timeout_s = 5.0

[sources.crm]
base_url = "http://127.0.0.1:{options.port_of('crm')}"
timeout_s = 5.0

[sources.crm.auth]
kind = "oauth2_client_credentials"
token_url = "/oauth/token"
client_id = "{secrets.crm_client_id}"
client_secret = "{secrets.crm_client_secret}"

[sources.supplier]
base_url = "http://127.0.0.1:{options.port_of('supplier')}"
timeout_s = 5.0

[sources.supplier.auth]
kind = "api_key"
header = "X-Api-Key"
key = "{secrets.supplier_api_key}"

[sources.logistics]
base_url = "http://127.0.0.1:{options.port_of('logistics')}"
timeout_s = 5.0

[sources.logistics.auth]
kind = "basic"
username = "{secrets.logistics_user}"
password = "{secrets.logistics_password}"
"""


async def prepare(options: DemoOptions, console: Console) -> Path:
    """Seed the ERP (if not seeded with these options), store the maintained links, write the config."""
    from demo.erp.seed import is_seeded, seed
    from gateway.db import upgrade
    from sources.crosswalk import SqlLinkStore
    from sources.sql import make_engine

    options.data_dir.mkdir(parents=True, exist_ok=True)
    secrets = load_or_create(options.data_dir)
    world = options.world
    if await is_seeded(options.erp, world):
        console.print(f"ERP already seeded ({options.erp})")
    else:
        with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            tasks: dict[str, int] = {}

            def report(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = int(progress.add_task(table, total=total))
                progress.update(tasks[table], completed=done, total=total)  # type: ignore[arg-type]

            stats = await seed(options.erp, world, progress=report)
        console.print(f"seeded the ERP in {stats.seconds:.1f}s")
    engine = make_engine(f"sqlite+aiosqlite:///{options.data_dir / 'gateway.db'}")
    await upgrade(engine)
    links = SqlLinkStore(engine)
    existing = await links.all()
    for crm_id, erp_number in world.manual_links:
        if existing.get(crm_id) != erp_number:
            await links.put(crm_id, erp_number, "maintained by the data steward (demo)")
    await engine.dispose()
    config = options.data_dir / "gateway.toml"
    config.write_text(gateway_toml(options, secrets))
    config.chmod(0o600)
    return config


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@contextlib.contextmanager
def sample_systems(options: DemoOptions) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the CRM, supplier and logistics systems as separate processes; stop them on exit."""
    sizes = ["--seed", str(options.seed), "--customers", str(options.customers), "--orders", str(options.orders),
             "--items", str(options.items)]
    env = {**os.environ, "DEMO_DATA_DIR": str(options.data_dir)}
    commands = {
        "crm": [sys.executable, "-m", "demo.crm", "--port", str(options.port_of("crm")), *sizes],
        "supplier": [sys.executable, "-m", "demo.partners", "supplier", "--port", str(options.port_of("supplier")),
                     *sizes],
        "logistics": [sys.executable, "-m", "demo.partners", "logistics", "--port",
                      str(options.port_of("logistics")), *sizes],
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
            processes.append(process)
            _wait_for_port(options.port_of(name), process)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def demo_jwt(secrets: DemoSecrets, role: str = "admin", hours: int = 12) -> str:
    """A JWT for the demo's staff user, signed with the demo's own secret."""
    import jwt

    now = int(time.time())
    return jwt.encode({"sub": f"demo-{role}@example.com", "iss": "gateway-demo", "aud": "gateway", "iat": now,
                       "exp": now + hours * 3600, "roles": [role]}, secrets.jwt_secret, algorithm="HS256")


#: The order `place_order_example` places: in stock and within the customer's credit in the seeded demo.
EXAMPLE_ORDER = {"customer": "100001", "warehouse": "CHI", "reference": "PO-4711",
                 "lines": [{"sku": "FLT00008", "quantity": 2}]}


def place_order_example(url: str, token: str) -> str:
    """A curl command placing an order as a sales user, with an Idempotency-Key (so running it twice places one)."""
    body = json.dumps({"query": "mutation Place($input: PlaceOrderInput!) { placeOrder(input: $input) { "
                                "order { number status total { amount currency } } userErrors { code field message } "
                                "saga { id state steps { name state } } } }",
                       "variables": {"input": EXAMPLE_ORDER}})
    return (f"Place an order (role sales; run it twice: the same key answers the first result again, with "
            f"Idempotent-Replayed: true, and places nothing):\n  curl -s {url} -H 'content-type: application/json' "
            f"-H 'authorization: Bearer {token}' -H 'idempotency-key: {uuid.uuid4()}' -d '{body}'\n")


def supplier_example(config: Path) -> str:
    """The operator's commands that let supplier V00002 confirm its purchase orders (README, partner guide)."""
    return (f"Let supplier V00002 confirm its purchase orders (prints its token, then the document's id):\n"
            f"  GATEWAY_CONFIG={config} uv run gateway tokens create --partner V00002 --name po-confirm "
            f"--scope purchase_orders:read --scope purchase_orders:confirm\n"
            f"  GATEWAY_CONFIG={config} uv run gateway documents add "
            f"docs/partner-operations/confirm-purchase-order.graphql\n")


def _exit_on_signal(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def run_demo(options: DemoOptions, console: Console) -> None:
    import uvicorn

    from gateway.graphiql import example_queries

    config = asyncio.run(prepare(options, console))
    os.environ["GATEWAY_CONFIG"] = str(config)
    # uvicorn answers SIGTERM by shutting down and then raising the signal again; by default that ends the
    # process on the spot, leaving the sample systems running. Ending through an exception stops them too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with sample_systems(options):
        url = f"http://127.0.0.1:{options.port}/graphql"
        secrets = load_or_create(options.data_dir)
        token = demo_jwt(secrets)
        console.rule("[bold]gateway demo")
        console.print(f"GraphiQL, signed in as the demo admin (the token stays in the URL fragment, "
                      f"which browsers never send):\n  {url}#token={token}\n", soft_wrap=True)
        name, query = next(iter(example_queries().items()))
        console.print(f"Example ({name}); more are preloaded in GraphiQL:\n")
        console.print(query, markup=False, highlight=False)
        console.print(f"curl: curl -s {url} -H 'content-type: application/json' -H 'authorization: Bearer {token}' "
                      "-d '{\"query\": \"{ customer(number: \\\"100001\\\") { name creditLimit { amount } } }\"}'\n",
                      soft_wrap=True)
        for text in (place_order_example(url, demo_jwt(secrets, role="sales")), supplier_example(config)):
            console.print(text, soft_wrap=True, markup=False, highlight=False)
        uvicorn.run("gateway.asgi:create", factory=True, host="127.0.0.1", port=options.port, log_level="info",
                    access_log=False)

"""The benchmark's systems: the ERP in PostgreSQL behind the latency proxy, the REST systems, the gateway.

Everything runs as its own process, as in production: `Stack` starts the ERP proxy and the sample
systems, `Stack.gateway()` starts a gateway with a given worker count and cache setting. Run this module
to start the stack and keep it up (for profiling by hand): `python -m bench.stack --workers 1`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from demo.erp.seed import is_seeded, seed
from demo.run import DemoOptions, _wait_for_port, demo_jwt, gateway_toml, sample_systems
from demo.secrets import load_or_create

ROOT = Path(__file__).parents[1]
console = Console()


@dataclass(frozen=True, slots=True)
class Latencies:
    erp_ms: float = 5.0  # per round trip to the database (a statement is one when the gateway is efficient)
    crm_ms: float = 15.0
    partners_ms: float = 25.0


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile `p` of `values` (0 for none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def prepare_erp(admin_url: str, options: DemoOptions) -> str:
    """The ERP seeded into the scratch database `gw_bench` (kept between runs when seeded alike)."""
    url = admin_url.rsplit("/", 1)[0] + "/gw_bench"
    with contextlib.suppress(Exception):
        if await is_seeded(url, options.world):
            return url
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text("DROP DATABASE IF EXISTS gw_bench WITH (FORCE)"))
        await conn.execute(text("CREATE DATABASE gw_bench"))
    await engine.dispose()
    console.print("seeding the ERP into PostgreSQL ...")
    stats = await seed(url, options.world)
    console.print(f"seeded in {stats.seconds:.1f}s")
    return url


@dataclass
class Stack:
    postgres: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    latencies: Latencies = field(default_factory=Latencies)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gw-bench-")))
    options: DemoOptions = field(init=False)
    erp_url: str = field(init=False, default="")  # through the latency proxy, as the gateway reaches it
    erp_direct_url: str = field(init=False, default="")  # the database itself, for preparing data

    def __post_init__(self) -> None:
        self.options = DemoOptions(port=free_port(), data_dir=self.folder)

    @property
    def admin_jwt(self) -> str:
        return self.jwt("admin")

    def jwt(self, role: str) -> str:
        """A staff token of `role` (one of the gateway's default roles: sales, ops, support, admin)."""
        return demo_jwt(load_or_create(self.folder), role)

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        erp_url = self.erp_direct_url = asyncio.run(prepare_erp(self.postgres, self.options))
        proxy_port = free_port()
        proxy = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "demo.erp.faultproxy", "--listen", f"127.0.0.1:{proxy_port}",
             "--upstream", "127.0.0.1:5432", "--latency-ms", str(self.latencies.erp_ms)], stdout=subprocess.DEVNULL)
        self.erp_url = erp_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy_port}")
        knobs = {"CRM_LATENCY_MS": self.latencies.crm_ms, "SUPPLIER_LATENCY_MS": self.latencies.partners_ms,
                 "LOGISTICS_LATENCY_MS": self.latencies.partners_ms}
        saved = {k: os.environ.get(k) for k in knobs}
        os.environ.update({k: str(v) for k, v in knobs.items()})
        try:
            _wait_for_port(proxy_port, proxy)
            with sample_systems(self.options):
                yield self
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def config(self, *, cached: bool) -> Path:
        secrets = load_or_create(self.folder)
        body = gateway_toml(self.options, secrets).replace(f'url = "{self.options.erp}"', f'url = "{self.erp_url}"')
        body = body.replace("graphiql = true", "graphiql = false\nexpose_upstream_calls = true\n"
                            "expose_upstream_calls_to_partners = true")
        body += f"\n[cache]\nenabled = {'true' if cached else 'false'}\n"
        if cached:
            # The hot scenario's customer 360 shows CRM interactions, which are never cached by default:
            # a dashboard that accepts them 10 s old lets the whole answer be kept (gateway.answers).
            body += '\n[cache.policies."crm.interactions_of"]\nttl_s = 10\n'
        path = self.folder / f"gateway-{'cached' if cached else 'live'}.toml"
        path.write_text(body)
        return path

    def env(self, *, cached: bool) -> dict[str, str]:
        return {**os.environ, "GATEWAY_CONFIG": str(self.config(cached=cached))}

    def cli(self, *args: str, cached: bool = False) -> str:
        """Run a `gateway` CLI command against this stack's gateway database; its last line of output."""
        done = subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=self.env(cached=cached),  # noqa: S603
                              capture_output=True, text=True, check=True)
        return done.stdout.strip().splitlines()[-1]

    @contextlib.contextmanager
    def gateway(self, *, workers: int, cached: bool, port: int | None = None) -> Iterator[str]:
        """A gateway process (uvicorn with `workers` processes); yields its GraphQL URL."""
        port = port or free_port()
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=self.env(cached=cached), stdout=subprocess.DEVNULL)
        try:
            _wait_for_port(port, process, timeout=120)
            yield f"http://127.0.0.1:{port}/graphql"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--cached", action="store_true")
    args = parser.parse_args()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop the systems too when this process is terminated
    stack = Stack()
    with stack.running(), stack.gateway(workers=args.workers, cached=args.cached, port=args.port) as url:
        print(f"gateway: {url}\nGATEWAY_CONFIG={stack.config(cached=args.cached)}\nadmin token: {stack.admin_jwt}",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()

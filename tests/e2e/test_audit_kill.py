"""Kill the gateway with SIGKILL in the middle of a burst: every request that got an answer has its
audit record, and the chain still verifies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from demo.run import _wait_for_port


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _burst(url: str, gateway: subprocess.Popen[bytes], total: int, kill_after: int) -> list[str]:
    answered: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            request_id = f"burst-{i}"
            try:
                r = await client.post(url, json={"query": "{ health { status } }"},
                                      headers={"x-request-id": request_id})
            except httpx.HTTPError:
                continue  # the gateway is gone: this request got no answer
            if r.status_code == 200:
                answered.append(r.headers["x-request-id"])
                if len(answered) == kill_after:
                    gateway.send_signal(signal.SIGKILL)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return answered


def test_sigkill_mid_burst_loses_no_answered_record(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "gateway.db"
    config = tmp_path / "gateway.toml"
    config.write_text(f'database_url = "sqlite+aiosqlite:///{db}"\n[auth]\njwt_secret = "{"k" * 40}"\n'
                      f'[sources.erp]\nurl = "sqlite+aiosqlite:///{tmp_path / "erp.db"}"\n'
                      "[limits]\nrate_per_second = 100000\nrate_burst = 100000\n")
    env = {**os.environ, "GATEWAY_CONFIG": str(config)}
    gateway = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, gateway)
        answered = asyncio.run(_burst(f"http://127.0.0.1:{port}/graphql", gateway, total=2_000, kill_after=300))
    finally:
        gateway.kill()
        gateway.wait(timeout=10)
    assert gateway.returncode == -signal.SIGKILL
    assert len(answered) >= 300
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT request_id FROM audit_events")}
    missing = set(answered) - stored
    assert not missing, f"{len(missing)} answered requests have no audit record"
    verified = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout

"""Shared e2e fixtures: the demo as users run it, with the sample systems and the gateway as processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from demo.run import DemoOptions, _wait_for_port, prepare, sample_systems
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


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_secrets(demo_dir: Path) -> DemoSecrets:
    return load_or_create(demo_dir)


@pytest.fixture(scope="session")
def demo_gateway(demo_dir: Path) -> Iterator[str]:
    data = demo_dir
    options = DemoOptions(seed=5, customers=200, orders=1_500, items=40, port=_free_base_port(), data_dir=data)

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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium driven by selenium; a failure under CI=true when it is missing, else a skip."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        message = "Chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()

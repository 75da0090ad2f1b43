"""CORS in a real browser: a page on another origin calls the demo gateway with `fetch`.

The page is served from two local ports, two origins; the gateway lists only the first. From there the
browser's preflight is granted and the page shows customer 360's name and the answer's request id; from
the other the browser refuses the answer, so the fetch rejects and the page shows the error.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.run import _wait_for_port, demo_jwt
from demo.secrets import DemoSecrets

pytestmark = pytest.mark.browser

QUERY = '{ customer(number: "100001") { name } }'

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>customer</title></head>
<body>
<p id="status">loading</p>
<h1 id="name"></h1>
<p id="request-id"></p>
<script>
const config = CONFIG;
const show = (id, text) => { document.getElementById(id).textContent = text; };
fetch(config.gateway + "/graphql", {
  method: "POST",
  headers: {"authorization": "Bearer " + config.token, "content-type": "application/json",
            "x-request-id": "cors-browser"},
  body: JSON.stringify({query: config.query}),
}).then(async (response) => {
  const body = await response.json();
  show("name", body.data.customer.name);
  show("request-id", response.headers.get("x-request-id") || "");
  show("status", "done");
}).catch((error) => show("status", "error: " + error));
</script>
</body></html>
"""


@dataclass(frozen=True)
class Pages:
    allowed: str  # the origin the gateway lists
    other: str  # the same page from an origin it does not


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _serve(page: bytes) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def cors_gateway(demo_gateway: str, demo_dir: Path, demo_secrets: DemoSecrets,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pages]]:
    """A second demo gateway process that lists the first page origin in `cors.allow_origins`, and the
    page, served from both origins, set up to call it as the demo's sales user."""
    port = _free_port()
    gateway = f"http://127.0.0.1:{port}"
    config = {"gateway": gateway, "token": demo_jwt(demo_secrets, role="sales"), "query": QUERY}
    page = PAGE.replace("CONFIG", json.dumps(config)).encode()
    servers = [_serve(page), _serve(page)]
    pages = Pages(allowed=servers[0][1], other=servers[1][1])
    env = {**os.environ, "GATEWAY_CONFIG": str(demo_dir / "gateway.toml"), "DEMO_DATA_DIR": str(demo_dir),
           # its own database, so the demo gateway's audit trail stays its own
           "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cors') / 'gateway.db'}",
           "GATEWAY_CORS__ALLOW_ORIGINS": json.dumps([pages.allowed])}
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)], env=env)
    try:
        _wait_for_port(port, process)
        yield gateway, pages
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server, _ in servers:
            server.shutdown()
            server.server_close()


def _outcome(driver: Any, url: str) -> dict[str, str]:
    """Load the page and wait until its fetch has succeeded or failed; what the page then shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "status").text != "loading")
    return {key: driver.find_element(By.ID, key).text for key in ("status", "name", "request-id")}


def test_a_page_on_an_allowed_origin_shows_the_customer(browser: Any, cors_gateway: tuple[str, Pages],
                                                        demo_secrets: DemoSecrets) -> None:
    gateway, pages = cors_gateway
    expected = httpx.post(f"{gateway}/graphql", json={"query": QUERY}, timeout=30, headers={
        "authorization": f"Bearer {demo_jwt(demo_secrets, role='sales')}"}).json()["data"]["customer"]["name"]
    shown = _outcome(browser, pages.allowed)
    assert expected and shown == {"status": "done", "name": expected, "request-id": "cors-browser"}


def test_the_same_page_on_another_origin_is_refused(browser: Any, cors_gateway: tuple[str, Pages]) -> None:
    _, pages = cors_gateway
    shown = _outcome(browser, pages.other)
    assert shown["status"].startswith("error: TypeError") and shown["name"] == ""

"""The GraphiQL page, served from local files (it works offline), with the example queries as tabs."""

from __future__ import annotations

import importlib.util
import json
import secrets
from functools import cache
from importlib import resources
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

#: Where the page loads GraphiQL, React and the stylesheet from.
ASSETS_PATH = "/graphiql/assets"
_ASSETS_PACKAGE = "graphene_django_graphiql_static"  # ships GraphiQL's built files; nothing else is used

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Gateway GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <style nonce="{nonce}">html, body, #graphiql {{ height: 100%; margin: 0; overflow: hidden; }}</style>
  <link rel="stylesheet" href="{assets}/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="{assets}/react.production.min.js"></script>
  <script src="{assets}/react-dom.production.min.js"></script>
  <script src="{assets}/graphiql.min.js"></script>
  <script id="examples" type="application/json">{examples}</script>
  <script nonce="{nonce}">
    // A token handed over in the URL fragment (never sent to a server) becomes the Authorization header.
    const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
    if (token) history.replaceState(null, "", window.location.pathname + window.location.search);
    const headers = token ? JSON.stringify({{ Authorization: "Bearer " + token }}, null, 2) : undefined;
    const tabs = JSON.parse(document.getElementById("examples").textContent).map((t) => ({{ ...t, headers }}));
    const fetcher = GraphiQL.createFetcher({{ url: window.location.pathname }});
    ReactDOM.render(
      React.createElement(GraphiQL, {{ fetcher, defaultTabs: tabs, defaultHeaders: headers,
                                       shouldPersistHeaders: false, defaultEditorToolsVisibility: true }}),
      document.getElementById("graphiql"));
  </script>
</body>
</html>
"""


@cache
def example_queries() -> dict[str, str]:
    """The example operations shipped with the gateway, by file name (sorted)."""
    folder = resources.files("gateway") / "static" / "examples"
    return {f.name: f.read_text(encoding="utf-8") for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".graphql")}


@cache
def _examples_json() -> str:
    # Inside <script type=application/json>, only "</" could end the element early.
    return json.dumps([{"query": q} for q in example_queries().values()]).replace("</", "<\\/")


def graphiql_response(headers: dict[str, str]) -> HTMLResponse:
    """The page, with a Content-Security-Policy that allows only our own files and this page's script."""
    nonce = secrets.token_urlsafe(16)
    policy = (f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}' "
              "'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    html = _PAGE.format(nonce=nonce, assets=ASSETS_PATH, examples=_examples_json())
    return HTMLResponse(html, headers={**headers, "Content-Security-Policy": policy,
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def assets_app() -> StaticFiles:
    spec = importlib.util.find_spec(_ASSETS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{_ASSETS_PACKAGE} is not installed: GraphiQL needs its files")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / _ASSETS_PACKAGE
    return StaticFiles(directory=folder)

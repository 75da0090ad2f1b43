"""The GraphiQL page, with the example queries preloaded as tabs."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Gateway GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3.8.3/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="https://unpkg.com/react@18.2.0/umd/react.production.min.js"></script>
  <script src="https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js"></script>
  <script src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js"></script>
  <script id="examples" type="application/json">{examples}</script>
  <script>
    const tabs = JSON.parse(document.getElementById("examples").textContent);
    const fetcher = GraphiQL.createFetcher({{ url: window.location.pathname }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{ fetcher, defaultTabs: tabs, defaultEditorToolsVisibility: true }}));
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
def graphiql_html() -> str:
    tabs = [{"query": q} for q in example_queries().values()]
    # Inside <script type=application/json>, only "</" could end the element early.
    payload = json.dumps(tabs).replace("</", "<\\/")
    return _PAGE.format(examples=payload)

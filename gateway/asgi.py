"""ASGI entry point for uvicorn (`gateway serve` uses it, so every worker builds its own app)."""

from __future__ import annotations

from starlette.applications import Starlette

from gateway.app import build_app
from gateway.settings import load_settings


def create() -> Starlette:
    return build_app(load_settings(), served=True)

"""Command-line start of one sample system (shared by the `python -m demo.*` entry points)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from demo.faults import Faults
from demo.secrets import DemoSecrets, load_or_create
from demo.world import Sizes, World


def parser(description: str) -> argparse.ArgumentParser:
    defaults = Sizes()
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--customers", type=int, default=defaults.customers)
    p.add_argument("--orders", type=int, default=defaults.orders)
    p.add_argument("--items", type=int, default=defaults.items)
    return p


def serve(args: argparse.Namespace, system: str,
          make: Callable[[World, DemoSecrets, Faults], Starlette]) -> None:
    world = World(seed=args.seed, sizes=Sizes(customers=args.customers, orders=args.orders, items=args.items))
    app = make(world, load_or_create(), Faults.from_env(system))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)

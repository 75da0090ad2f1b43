"""Command-line start of one sample system, shared by the `python -m demo.crm` and `demo.partners` entry points.

Every `demo.world.Sizes` field is a flag (`--purchase-orders` for `purchase_orders`), generated from the
dataclass so a new size needs no change here; credentials come from `demo.secrets.load_or_create()`
(data folder from `DEMO_DATA_DIR`, default `demo-data`), fault knobs from `<SYS>_*` variables.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields

import uvicorn
from starlette.applications import Starlette

from demo.faults import Faults
from demo.secrets import DemoSecrets, load_or_create
from demo.world import WAREHOUSES, Sizes, World

MakeApp = Callable[[World, DemoSecrets, Faults], Starlette]


def parser(description: str) -> argparse.ArgumentParser:
    """Flags every sample system takes: where to listen, and the seed and sizes of its world."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    defaults = Sizes()
    for f in fields(Sizes):
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=int, default=getattr(defaults, f.name),
                       metavar="N", help=f"how many {f.name.replace('_', ' ')} (default %(default)s)")
    return p


def sizes_of(args: argparse.Namespace) -> Sizes:
    """The `Sizes` the flags ask for; ValueError for sizes the world cannot be built from."""
    sizes = Sizes(**{f.name: getattr(args, f.name) for f in fields(Sizes)})
    if any(getattr(sizes, f.name) < 0 for f in fields(Sizes)):
        raise ValueError("sizes cannot be negative")
    if sizes.customers < 1 or sizes.items < 1:
        raise ValueError("--customers and --items must be at least 1")
    if not 1 <= sizes.warehouses <= len(WAREHOUSES):
        raise ValueError(f"--warehouses must be from 1 to {len(WAREHOUSES)}")
    if not 1 <= sizes.carriers < sizes.vendors:
        raise ValueError("--carriers must be at least 1 and leave at least one supplier among --vendors")
    return sizes


def serve(args: argparse.Namespace, system: str, make: MakeApp) -> None:
    """Build the world and the app from the parsed flags and run it with uvicorn until stopped."""
    try:
        sizes = sizes_of(args)
        faults = Faults.from_env(system)
    except ValueError as exc:
        raise SystemExit(f"demo.{system}: {exc}") from None
    app = make(World(seed=args.seed, sizes=sizes), load_or_create(), faults)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)

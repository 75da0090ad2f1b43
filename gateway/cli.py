"""The `gateway` command: serve, run the demo, check configuration, maintain the crosswalk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from gateway.settings import ConfigError, Settings, load_settings

app = typer.Typer(help="GraphQL gateway over the ERP, the CRM and partner systems.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
crosswalk_app = typer.Typer(help="The CRM <-> ERP customer crosswalk.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(crosswalk_app, name="crosswalk")
console = Console()

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML file (default: ./gateway.toml)",
                                                  exists=True, dir_okay=False)]


def _settings(config: Path | None) -> Settings:
    if config is not None:
        os.environ["GATEWAY_CONFIG"] = str(config)  # so that `serve` workers read the same file
    try:
        return load_settings(config)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def serve(config: ConfigOption = None, host: str | None = None, port: int | None = None,
          workers: Annotated[int, typer.Option(min=1, max=64)] = 1) -> None:
    """Serve the gateway with uvicorn."""
    settings = _settings(config)
    uvicorn.run("gateway.asgi:create", factory=True, host=host or settings.server.host,
                port=port or settings.server.port, workers=workers, log_level="info", access_log=False)


@app.command()
def demo(
    seed: int = typer.Option(42, help="seed of the sample data"),
    customers: int = typer.Option(5_000, min=10),
    orders: int = typer.Option(50_000, min=10),
    items: int = typer.Option(500, min=10),
    erp_url: str | None = typer.Option(None, help="ERP database URL (default: SQLite under demo-data/)"),
    port: int = typer.Option(8000, help="gateway port; the sample systems use the next ports up"),
    data_dir: Path = typer.Option(Path("demo-data"), help="where the demo keeps its files"),
) -> None:
    """Seed the sample systems if needed, start them and the gateway, and print example queries."""
    from demo.run import DemoOptions, run_demo

    run_demo(DemoOptions(seed=seed, customers=customers, orders=orders, items=items, erp_url=erp_url,
                         port=port, data_dir=data_dir), console)


def _masked(url: str) -> str:
    """A database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and show what it amounts to (secrets masked)."""
    settings = _settings(config)
    table = Table(title="gateway configuration", show_lines=False)
    table.add_column("setting")
    table.add_column("value")
    table.add_row("config file", os.environ.get("GATEWAY_CONFIG", "./gateway.toml (if present)"))
    table.add_row("database_url", _masked(settings.database_url))
    table.add_row("server", f"{settings.server.host}:{settings.server.port} graphiql={settings.server.graphiql}")
    table.add_row("sources.erp", f"{_masked(settings.sources.erp.url)} timeout={settings.sources.erp.timeout_s}s")
    for name in ("crm", "supplier", "logistics"):
        source = getattr(settings.sources, name)
        auth = source.auth.kind if source.auth else "none"
        table.add_row(f"sources.{name}", f"{source.base_url} auth={auth} timeout={source.timeout_s}s")
    console.print(table)
    console.print("[green]configuration is valid[/green]")


@crosswalk_app.command("report")
def crosswalk_report(config: ConfigOption = None,
                     limit: int = typer.Option(20, help="unlinked records to list")) -> None:
    """Build the crosswalk now and report how records are linked and which are not."""
    settings = _settings(config)

    async def run() -> None:
        from gateway.services import open_services

        async with open_services(settings) as services:
            index = await services.crosswalk.build()
        table = Table(title="crosswalk")
        table.add_column("linked by / state")
        table.add_column("CRM records", justify="right")
        for key, count in index.counts().items():
            table.add_row(key, str(count))
        console.print(table)
        if index.unlinked:
            unlinked = Table(title=f"unlinked CRM records (first {limit})")
            for col in ("crm id", "erp number as typed", "reason"):
                unlinked.add_column(col)
            for u in index.unlinked[:limit]:
                unlinked.add_row(u.crm_id, u.raw_erp_number or "-", u.reason)
            console.print(unlinked)

    asyncio.run(run())


@crosswalk_app.command("link")
def crosswalk_link(crm_id: str, erp_number: str, note: str = "", config: ConfigOption = None) -> None:
    """Record that CRM customer CRM_ID is ERP customer ERP_NUMBER."""
    settings = _settings(config)

    async def run() -> None:
        from gateway.services import open_services

        async with open_services(settings) as services:
            found = await services.erp.customers([erp_number.strip()])
            if not found:
                console.print(f"[red]ERP customer {erp_number} does not exist[/red]")
                raise typer.Exit(1)
            await services.links.put(crm_id.strip(), erp_number.strip(), note)
        console.print(f"linked CRM {crm_id} -> ERP {erp_number}")

    asyncio.run(run())


@crosswalk_app.command("unlink")
def crosswalk_unlink(crm_id: str, config: ConfigOption = None) -> None:
    """Remove a maintained link."""
    settings = _settings(config)

    async def run() -> bool:
        from gateway.services import open_services

        async with open_services(settings) as services:
            return await services.links.remove(crm_id.strip())

    if not asyncio.run(run()):
        console.print(f"[yellow]no maintained link for {crm_id}[/yellow]")
        raise typer.Exit(1)
    console.print(f"removed the link of CRM {crm_id}")


if __name__ == "__main__":
    app()

"""The `gateway` command: serve, run the demo, check configuration, maintain the crosswalk."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.settings import ConfigError, Settings, load_settings

app = typer.Typer(help="GraphQL gateway over the ERP, the CRM and partner systems.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
crosswalk_app = typer.Typer(help="The CRM <-> ERP customer crosswalk.", no_args_is_help=True)
tokens_app = typer.Typer(help="Partner API tokens.", no_args_is_help=True)
documents_app = typer.Typer(help="Trusted documents (the operations partner tokens may run).", no_args_is_help=True)
db_app = typer.Typer(help="The gateway's own database.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
schema_app = typer.Typer(help="The schema as a contract: its SDL, and the changes between two versions.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(crosswalk_app, name="crosswalk")
app.add_typer(tokens_app, name="tokens")
app.add_typer(documents_app, name="documents")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
sagas_app = typer.Typer(help="Business operations' sagas: list them, and resume the unfinished ones.",
                        no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(sagas_app, name="sagas")
events_app = typer.Typer(help="The change-event bus.", no_args_is_help=True)
app.add_typer(events_app, name="events")
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



@asynccontextmanager
async def _database(settings: Settings, url: str | None = None) -> AsyncIterator[AsyncEngine]:
    """The gateway's database (or the one at `url`), migrated to the current schema."""
    from gateway.db import upgrade
    from sources.sql import make_engine

    engine = make_engine(url or settings.database_url, pool_size=1)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply the database migrations (the gateway also does this when it starts)."""
    settings = _settings(config)

    async def run() -> str | None:
        from gateway.db import current

        async with _database(settings) as engine:
            return await current(engine)

    console.print(f"database at revision {asyncio.run(run())}")


@tokens_app.command("create")
def tokens_create(
    partner: Annotated[str, typer.Option("--partner", help="the partner's vendor code, e.g. V00002")],
    scope: Annotated[list[str], typer.Option("--scope", help="repeat for each scope")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "api",
    days: Annotated[int, typer.Option(min=1, max=3650, help="valid for this many days")] = 365,
    config: ConfigOption = None,
) -> None:
    """Mint a partner token. It is printed once and never stored: keep it."""
    from auth.scopes import PARTNER_SCOPES
    from auth.tokens import SqlTokenStore

    settings = _settings(config)
    wanted = frozenset(scope)
    if bad := wanted - PARTNER_SCOPES:
        console.print(f"[red]partner tokens cannot carry {', '.join(sorted(bad))}; "
                      f"choose from {', '.join(sorted(PARTNER_SCOPES))}[/red]")
        raise typer.Exit(2)

    async def run() -> tuple[str, str]:
        async with _database(settings) as engine:
            plain, record = await SqlTokenStore(engine).create(
                name=name, partner_id=partner.strip(), scopes=wanted,
                expires_at=datetime.now(UTC) + timedelta(days=days))
            return plain, record.id

    plain, token_id = asyncio.run(run())
    console.print(f"token {token_id} for partner {partner} ({', '.join(sorted(wanted))}), valid {days} days:")
    print(plain)


@tokens_app.command("list")
def tokens_list(partner: str | None = None, as_json: Annotated[bool, typer.Option("--json")] = False,
                config: ConfigOption = None) -> None:
    """Tokens with their state (never the token itself)."""
    from auth.tokens import SqlTokenStore

    settings = _settings(config)

    async def run() -> list[Any]:
        async with _database(settings) as engine:
            return await SqlTokenStore(engine).list(partner)

    now = datetime.now(UTC)
    tokens = asyncio.run(run())
    if as_json:
        print(json.dumps([{"id": t.id, "prefix": t.prefix, "partner": t.partner_id, "name": t.name,
                           "scopes": sorted(t.scopes), "created": t.created_at.isoformat(),
                           "expires": t.expires_at.isoformat() if t.expires_at else None,
                           "last_used": t.last_used_at.isoformat() if t.last_used_at else None,
                           "state": _state(t, now)} for t in tokens], indent=2))
        return
    table = Table(title="partner tokens")
    for column in ("id", "prefix", "partner", "name", "scopes", "created", "expires", "last used", "state"):
        table.add_column(column, overflow="fold")
    for t in tokens:
        state = _state(t, now)
        table.add_row(t.id, t.prefix + "...", t.partner_id, t.name, " ".join(sorted(t.scopes)),
                      f"{t.created_at:%Y-%m-%d}", f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "-",
                      f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-", state)
    console.print(table)


def _state(token: Any, now: datetime) -> str:
    return "revoked" if token.revoked_at else ("expired" if not token.usable(now) else "active")


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, config: ConfigOption = None) -> None:
    """Revoke a token; it stops working with the next request."""
    from auth.tokens import SqlTokenStore

    settings = _settings(config)

    async def run() -> bool:
        async with _database(settings) as engine:
            return await SqlTokenStore(engine).revoke(token_id)

    if not asyncio.run(run()):
        console.print(f"[yellow]no active token {token_id}[/yellow]")
        raise typer.Exit(1)
    console.print(f"revoked {token_id}")


@documents_app.command("add")
def documents_add(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
                  config: ConfigOption = None) -> None:
    """Register the operation(s) in FILE (validated against the schema) and print the document id."""
    from gateway.app import gateway_schema
    from gateway.documents import DocumentStore, InvalidDocument, check_document

    settings = _settings(config)
    body = file.read_text(encoding="utf-8")
    try:
        name = check_document(gateway_schema()._schema, body)
    except InvalidDocument as exc:
        console.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(2) from None

    async def run() -> str:
        async with _database(settings) as engine:
            return (await DocumentStore(engine).add(name, body)).id

    doc_id = asyncio.run(run())
    console.print(f"{file} ({name}):")
    print(doc_id)


@documents_app.command("list")
def documents_list(config: ConfigOption = None) -> None:
    from gateway.documents import DocumentStore

    settings = _settings(config)

    async def run() -> list[Any]:
        async with _database(settings) as engine:
            return await DocumentStore(engine).list()

    table = Table(title="trusted documents")
    table.add_column("id")
    table.add_column("operations")
    for doc in asyncio.run(run()):
        table.add_row(doc.id, doc.name)
    console.print(table)


@documents_app.command("remove")
def documents_remove(doc_id: str, config: ConfigOption = None) -> None:
    from gateway.documents import DocumentStore

    settings = _settings(config)

    async def run() -> bool:
        async with _database(settings) as engine:
            return await DocumentStore(engine).remove(doc_id)

    if not asyncio.run(run()):
        console.print(f"[yellow]no document {doc_id}[/yellow]")
        raise typer.Exit(1)
    console.print(f"removed {doc_id}")


@app.command("jwt")
def issue_jwt(role: Annotated[list[str], typer.Option("--role", help="repeat for each role")],
              subject: str = "dev@example.com", minutes: Annotated[int, typer.Option(min=1, max=1440)] = 60,
              config: ConfigOption = None) -> None:
    """Sign a JWT with the configured HS256 secret, for development (production tokens come from the IdP)."""
    import jwt

    settings = _settings(config)
    if settings.auth.jwt_secret is None:
        console.print("[red]no auth.jwt_secret configured: JWTs come from the identity provider[/red]")
        raise typer.Exit(2)
    now = int(datetime.now(UTC).timestamp())
    print(jwt.encode({"sub": subject, "iss": settings.auth.jwt_issuer, "aud": settings.auth.jwt_audience,
                      "iat": now, "exp": now + minutes * 60, "roles": role},
                     settings.auth.jwt_secret.get_secret_value(), algorithm="HS256"))



@audit_app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check every writer's hash chain; name each changed, deleted or reordered record."""
    from gateway.audit.store import verify

    settings = _settings(config)

    async def run() -> Any:
        async with _database(settings, settings.audit.url or settings.database_url) as engine:
            return await verify(engine)

    result = asyncio.run(run())
    for p in result.problems:
        console.print(f"[red]{p.kind}[/red] writer {p.writer} seq {p.seq}: {p.detail}")
    for writer, (seq, head) in sorted(result.writers.items()):
        console.print(f"writer {writer}: {seq} records, head {head}")
    if not result.ok:
        console.print(f"[red]audit trail NOT intact: {len(result.problems)} problem(s) "
                      f"in {result.records} records[/red]")
        raise typer.Exit(1)
    console.print(f"[green]audit trail intact: {result.records} records in {len(result.writers)} chain(s)[/green]")


@audit_app.command("export")
def audit_export(fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
                 since: Annotated[str | None, typer.Option("--from", help="ISO 8601, inclusive")] = None,
                 until: Annotated[str | None, typer.Option("--to", help="ISO 8601, exclusive")] = None,
                 output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
                 config: ConfigOption = None) -> None:
    """Write the audit records of a period as JSON lines or CSV (to a file, or standard output)."""
    import csv
    import dataclasses
    import sys

    from auth.audit import AuditFilter
    from gateway.audit.store import SqlAuditReader

    if fmt not in ("jsonl", "csv"):
        console.print("[red]--format is jsonl or csv[/red]")
        raise typer.Exit(2)
    settings = _settings(config)
    columns = ["id", "time", "request_id", "client_ip", "subject", "principal_kind", "token_id", "partner_id",
               "operation_type", "operation_name", "document", "fields", "pii_fields", "variables_hash", "outcome",
               "codes", "http_status", "duration_ms", "upstream", "stale_sources"]

    async def run(out: Any) -> int:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(columns)
        count = 0
        async with _database(settings, settings.audit.url or settings.database_url) as engine:
            async for record in SqlAuditReader(engine).stream(AuditFilter(since=since, until=until)):
                count += 1
                if writer is None:
                    out.write(record.canonical().decode() + "\n")
                    continue
                data = dataclasses.asdict(record)
                writer.writerow([json.dumps(data[c]) if isinstance(data[c], list | tuple) else data[c]
                                 for c in columns])
        return count

    if output is None:
        count = asyncio.run(run(sys.stdout))
    else:
        with open(output, "w", newline="", encoding="utf-8") as fh:
            count = asyncio.run(run(fh))
    Console(stderr=True).print(f"exported {count} records")


@schema_app.command("print")
def schema_print(output: Annotated[Path | None, typer.Option("--output", "-o", help="write here, not to "
                                                            "standard output")] = None) -> None:
    """Print the schema's SDL (types sorted by name; what `schema.graphql` holds)."""
    import sys

    from gateway.app import gateway_schema
    from gateway.schema_contract import schema_sdl

    sdl = schema_sdl(gateway_schema())
    if output is None:
        sys.stdout.write(sdl)
        return
    output.write_text(sdl, encoding="utf-8", newline="\n")
    Console(stderr=True).print(f"wrote {output}")


def _schema_text(spec: str) -> str:
    """The SDL named by `spec`: a file, `-` for standard input, or `REVISION:PATH` (git)."""
    import sys

    from gateway.schema_contract import git_file

    if spec == "-":
        return sys.stdin.read()
    path = Path(spec)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    revision, colon, file = spec.partition(":")
    if colon and revision and file:
        text = git_file(revision, file, cwd=Path.cwd())
        if text is not None:
            return text
        console.print(f"[red]{escape(spec)}: no such file, and git has no {escape(file)} at {escape(revision)}[/red]",
                      soft_wrap=True)
    else:
        console.print(f"[red]{escape(spec)}: no such file[/red]", soft_wrap=True)
    raise typer.Exit(2)


@schema_app.command("check")
def schema_check(
    old: Annotated[str, typer.Argument(help="the schema clients use now: a file, `-`, or a git `REV:PATH` such "
                                            "as main:schema.graphql")],
    new: Annotated[str, typer.Argument(help="the changed schema, in the same forms")],
    fail_on_dangerous: Annotated[bool, typer.Option(help="exit 1 on dangerous changes too")] = False,
    allow: Annotated[Path | None, typer.Option(help="allow-list (schema-breaking-allowed.txt): its breaking "
                                                     "changes, and removals deprecated in OLD, do not fail",
                                               exists=True, dir_okay=False)] = None,
) -> None:
    """List the breaking and dangerous changes from OLD to NEW; exit 1 if any change breaks clients."""
    from rich.text import Text

    from gateway.schema_contract import SchemaFileError, compare, read_allowed

    try:
        allowed = read_allowed(allow.read_text(encoding="utf-8")) if allow is not None else None
        changes = compare(_schema_text(old), _schema_text(new), allowed=allowed, old_name=old, new_name=new)
    except SchemaFileError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    if not changes:
        console.print("[green]no breaking or dangerous changes[/green]")
        return
    table = Table(title="schema changes")
    for column in ("severity", "change", *(("allowed because",) if allow else ())):
        table.add_column(column, overflow="fold")
    for change in changes:
        style = "red" if change.blocking else "yellow"
        table.add_row(Text(change.severity, style=style), Text(change.description),
                      *((Text(change.excuse or "-"),) if allow else ()))
    console.print(table)
    blocking = [c for c in changes if c.blocking]
    dangerous = [c for c in changes if c.severity == "dangerous"]
    if blocking:
        named = ", ".join(c.coordinate or c.description for c in blocking)
        console.print(f"[red]{len(blocking)} breaking change(s): {escape(named)}. Operations that use them fail: "
                      "deprecate first and remove later, or list the change with a reason in the allow-list[/red]",
                      soft_wrap=True)
        raise typer.Exit(1)
    if dangerous and fail_on_dangerous:
        console.print(f"[yellow]{len(dangerous)} dangerous change(s), and --fail-on-dangerous[/yellow]", soft_wrap=True)
        raise typer.Exit(1)



SAGA_STATE_STYLE = {"COMPLETED": "green", "PENDING": "yellow", "RUNNING": "cyan", "COMPENSATING": "yellow",
                    "REJECTED": "blue", "FAILED": "red", "NEEDS_ATTENTION": "bold red"}


@sagas_app.command("list")
def sagas_list(config: ConfigOption = None,
               state: Annotated[list[str] | None, typer.Option(
                   "--state", help="only these states (repeat); e.g. NEEDS_ATTENTION")] = None,
               limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
               as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False) -> None:
    """The newest sagas with their steps' states (those NEEDS_ATTENTION are what a person must look at)."""
    from operations.saga import SagaState

    settings = _settings(config)
    try:
        states = [SagaState(s.strip().upper()) for s in state or ()]
    except ValueError:
        console.print(f"[red]--state must be one of {', '.join(s.value for s in SagaState)}[/red]")
        raise typer.Exit(2) from None

    async def run() -> None:
        from operations.store import SagaStore

        async with _database(settings) as engine:
            rows = await SagaStore(engine).listing([s.value for s in states] or None, limit)
        if as_json:
            for row in rows:
                typer.echo(json.dumps({"id": row.id, "kind": row.kind, "state": row.state,
                                       "created": datetime.fromtimestamp(row.created_ms / 1000, UTC).isoformat(),
                                       "attempts": row.attempts, "error": row.error,
                                       "steps": [{"name": s.name, "state": s.state, "attempts": s.attempts}
                                                 for s in row.steps]}))
            return
        table = Table(title=f"sagas (newest {limit})")
        for col in ("id", "operation", "state", "started (UTC)", "steps", "error"):
            table.add_column(col)
        for row in rows:
            style = SAGA_STATE_STYLE.get(row.state, "")
            error = row.error or {}
            table.add_row(row.id, row.kind, f"[{style}]{row.state}[/{style}]" if style else row.state,
                          datetime.fromtimestamp(row.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                          ", ".join(f"{s.name}={s.state}" for s in row.steps),
                          escape(str(error.get("attention") or error.get("message") or "")))
        console.print(table)

    asyncio.run(run())


@sagas_app.command("resume")
def sagas_resume(config: ConfigOption = None) -> None:
    """Drive every unfinished saga that is due now (complete it, or undo it) and publish pending changes.

    A running gateway does this by itself every few seconds; this is for after an outage, or from cron.
    """
    settings = _settings(config)

    async def run() -> int:
        from gateway.services import open_services

        async with open_services(settings) as services:
            assert services.operations is not None
            await services.operations.systems.erp_writer.install()
            driven = await services.operations.resume()
            counts = await services.operations.store.counts()
        console.print(f"resumed {driven} saga(s); now: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        return counts.get("NEEDS_ATTENTION", 0)

    attention = asyncio.run(run())
    if attention:
        console.print(f"[bold red]{attention} saga(s) need attention: gateway sagas list --state NEEDS_ATTENTION"
                      "[/bold red]")
        raise typer.Exit(1)



@events_app.command("provision")
def events_provision(
    url: Annotated[str, typer.Option(help="the NATS server")] = "nats://127.0.0.1:4222",
    stream: Annotated[str, typer.Option(help="the JetStream stream of change events")] = "GATEWAY_CHANGES",
    prefix: Annotated[str, typer.Option(help="its subjects: <prefix>.<source>.<entity>")] = "gateway.changes",
    days: Annotated[float, typer.Option(min=0.01, help="how long events are kept (replicas resume within it)")] = 7,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds to wait for the server")] = 10,
) -> None:
    """Create or update the change events' JetStream stream (a deployment step: gateways never create it)."""
    from events.nats import NatsBus

    try:
        asyncio.run(NatsBus.provision(url, stream=stream, prefix=prefix, max_age_s=days * 86_400,
                                      timeout_s=timeout))
    except Exception as exc:  # any failure of the server or the network: said in one line, exit 1
        console.print(f"[red]could not provision {stream} on {url}: {type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"stream {stream} ready on {url} for {prefix}.>")


if __name__ == "__main__":
    app()

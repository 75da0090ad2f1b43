"""The command line: tokens, trusted documents, development JWTs and configuration checks."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from gateway.cli import app

SECRET = "s" * 40


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'database_url = "sqlite+aiosqlite:///{tmp_path / "gw.db"}"\n[auth]\njwt_secret = "{SECRET}"\n')
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_token_lifecycle(config: Path) -> None:
    out = run("tokens", "create", "--partner", "V00002", "--scope", "purchase_orders:read", "--name", "sync")
    token = out.strip().splitlines()[-1]
    assert token.startswith("gwp_") and len(token) > 40
    listed = json.loads(run("tokens", "list", "--json"))
    assert [(t["partner"], t["state"], t["scopes"]) for t in listed] == [("V00002", "active",
                                                                          ["purchase_orders:read"])]
    assert token not in json.dumps(listed)
    run("tokens", "revoke", listed[0]["id"])
    assert json.loads(run("tokens", "list", "--json"))[0]["state"] == "revoked"
    again = CliRunner().invoke(app, ["tokens", "revoke", listed[0]["id"]])
    assert again.exit_code == 1


def test_tokens_refuse_internal_scopes(config: Path) -> None:
    result = CliRunner().invoke(app, ["tokens", "create", "--partner", "V1", "--scope", "customers:pii"])
    assert result.exit_code == 2 and "cannot carry customers:pii" in result.output


def test_documents_are_validated_and_registered(config: Path, tmp_path: Path) -> None:
    good = Path(__file__).parents[2] / "docs" / "partner-operations" / "open-purchase-orders.graphql"
    doc_id = run("documents", "add", str(good)).strip().splitlines()[-1]
    assert doc_id.startswith("sha256:") and "OpenPurchaseOrders" in run("documents", "list")
    bad = tmp_path / "bad.graphql"
    bad.write_text("{ customers { nope } }")
    result = CliRunner().invoke(app, ["documents", "add", str(bad)])
    assert result.exit_code == 2 and "nope" in result.output


def test_development_jwt(config: Path) -> None:
    token = run("jwt", "--role", "sales", "--subject", "bob@example.com").strip().splitlines()[-1]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="gateway")
    assert claims["roles"] == ["sales"] and claims["sub"] == "bob@example.com"


def test_config_check_reports_bad_values(config: Path) -> None:
    config.write_text('[auth]\njwt_secret = "short"\n')
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2 and "jwt_secret must be at least 32 characters" in result.output


def test_audit_verify_and_export(config: Path, tmp_path: Path) -> None:
    import asyncio

    from auth.audit import AuditRecord
    from gateway.audit.sink import SqlAuditSink
    from gateway.db import upgrade
    from sources.sql import make_engine

    async def write() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        await upgrade(engine)
        sink = SqlAuditSink(engine, window_ms=1)
        await sink.start()
        for n in range(3):
            await sink.write(AuditRecord(id=f"i{n}", time=f"2026-11-25T00:00:0{n}+00:00", request_id=f"r{n}",
                                         client_ip="-", subject="s", principal_kind="user", token_id=None,
                                         partner_id=None, operation_type="query", operation_name="Q", document=None))
        await sink.aclose()
        await engine.dispose()

    asyncio.run(write())
    assert "intact: 3 records" in run("audit", "verify")
    lines = run("audit", "export", "--format", "jsonl", "--from", "2026-11-25T00:00:01").strip().splitlines()
    assert [json.loads(line)["request_id"] for line in lines if line.startswith("{")] == ["r1", "r2"]
    out = tmp_path / "audit.csv"
    run("audit", "export", "--format", "csv", "--output", str(out))
    assert out.read_text().splitlines()[0].startswith("id,time,request_id")
    assert len(out.read_text().splitlines()) == 4


def test_schema_print_writes_the_codes_schema(tmp_path: Path) -> None:
    from gateway.app import gateway_schema
    from gateway.schema_contract import schema_sdl

    out = tmp_path / "schema.graphql"
    run("schema", "print", "--output", str(out))
    assert out.read_text(encoding="utf-8") == schema_sdl(gateway_schema())
    assert CliRunner().invoke(app, ["schema", "print"]).stdout == out.read_text(encoding="utf-8")


def without_field(sdl: str, field: str) -> str:
    """The SDL without the field line `field` and the description above it."""
    lines = sdl.splitlines(keepends=True)
    end = lines.index(field)
    start = end
    if lines[start - 1].rstrip().endswith('"""'):
        start -= 1
        if lines[start].strip() == '"""':  # a block description: back to its opening quotes
            start -= 1
            while lines[start].strip() != '"""':
                start -= 1
    return "".join(lines[:start] + lines[end + 1:])


def test_schema_check_fails_on_a_removed_field_and_names_it(tmp_path: Path) -> None:
    old = tmp_path / "old.graphql"
    run("schema", "print", "--output", str(old))
    new = tmp_path / "new.graphql"
    new.write_text(without_field(old.read_text(encoding="utf-8"), "  creditLimit: Money\n"), encoding="utf-8")

    result = CliRunner().invoke(app, ["schema", "check", str(old), str(new)])
    assert result.exit_code == 1, result.output
    assert "Customer.creditLimit" in result.output and "breaking" in result.output

    # An allow-list entry with a reason lets it pass, and the table says why.
    allow = tmp_path / "allowed.txt"
    allow.write_text("Field Customer.creditLimit was removed. -- unused\n", encoding="utf-8")
    allowed = CliRunner().invoke(app, ["schema", "check", str(old), str(new), "--allow", str(allow)])
    assert allowed.exit_code == 0, allowed.output
    assert "unused" in allowed.output
    assert run("schema", "check", str(old), str(old)).strip() == "no breaking or dangerous changes"


def test_schema_check_lists_dangerous_changes_and_fails_on_them_only_when_asked(tmp_path: Path) -> None:
    old = tmp_path / "old.graphql"
    run("schema", "print", "--output", str(old))
    value = "  NET_60\n"
    assert value in old.read_text(encoding="utf-8")
    new = old.read_text(encoding="utf-8").replace(value, value + "  NET_90\n")

    listed = CliRunner().invoke(app, ["schema", "check", str(old), "-"], input=new)  # NEW from standard input
    assert listed.exit_code == 0, listed.output
    assert "dangerous" in listed.output and "PaymentTerms.NET_90" in listed.output
    strict = CliRunner().invoke(app, ["schema", "check", str(old), "-", "--fail-on-dangerous"], input=new)
    assert strict.exit_code == 1, strict.output
    missing = CliRunner().invoke(app, ["schema", "check", str(tmp_path / "nope.graphql"), str(old)])
    assert missing.exit_code == 2 and "no such file" in missing.output

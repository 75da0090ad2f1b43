"""Configuration: TOML file, environment overrides, and clear messages for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings.sources.crm.base_url == "http://127.0.0.1:8101"
    assert settings.server.max_page_size == 100


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "g.toml"
    config.write_text('[sources.crm]\nbase_url = "https://crm.internal/"\ntimeout_s = 3\n'
                      '[sources.crm.auth]\nkind = "api_key"\nkey = "k"\n')
    monkeypatch.setenv("GATEWAY_SOURCES__CRM__TIMEOUT_S", "1.5")
    settings = load_settings(config)
    assert settings.sources.crm.base_url == "https://crm.internal"
    assert settings.sources.crm.timeout_s == 1.5
    assert settings.sources.crm.auth is not None and settings.sources.crm.auth.kind == "api_key"


@pytest.mark.parametrize(("toml", "message"), [
    ('[sources.erp]\nurl = "sqlite:///x.db"\n', "sources.erp.url"),
    ('[sources.crm]\nbase_url = "ftp://x"\n', "sources.crm.base_url"),
    ('[sources.crm]\nbase_url = "http://x"\ntimeout_s = -1\n', "sources.crm.timeout_s"),
    ('[sources.crm]\nbase_url = "http://x"\n[sources.crm.auth]\nkind = "magic"\n', "sources.crm.auth"),
    ('[server]\nprot = 1\n', "server.prot"),
    ("[server\n", "cannot read configuration"),
])
def test_bad_configuration_names_the_setting(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert message in str(caught.value)


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", "/nonexistent/gateway.toml")
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()

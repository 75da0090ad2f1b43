from tests.integration.conftest import erp_sqlite_url, gateway, gw, world  # noqa: F401 - shared fixtures

"""Credentials of the sample systems, generated at first run and kept under the demo data folder.

Nothing secret is committed: every checkout makes its own on first use.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR", "demo-data"))


@dataclass(frozen=True, slots=True)
class DemoSecrets:
    crm_client_id: str
    crm_client_secret: str
    supplier_api_key: str
    logistics_user: str
    logistics_password: str
    admin_key: str
    jwt_secret: str

    @classmethod
    def generate(cls) -> DemoSecrets:
        return cls(
            crm_client_id="gateway",
            crm_client_secret=secrets.token_urlsafe(24),
            supplier_api_key=secrets.token_urlsafe(24),
            logistics_user="gateway",
            logistics_password=secrets.token_urlsafe(24),
            admin_key=secrets.token_urlsafe(24),
            jwt_secret=secrets.token_urlsafe(48),
        )


def load_or_create(data_dir: Path = DEFAULT_DATA_DIR) -> DemoSecrets:
    """Read `secrets.json` from the data folder, creating it (mode 0600) on first use."""
    path = data_dir / "secrets.json"
    if path.exists():
        return DemoSecrets(**json.loads(path.read_text()))
    data_dir.mkdir(parents=True, exist_ok=True)
    made = DemoSecrets.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(made), fh, indent=2)
    return made

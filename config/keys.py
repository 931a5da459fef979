"""The embedded default's keys, and the one key anyone with the source knows.

`python -m config.keys` (run by scripts/bootstrap.sh) generates them once and keeps them in var/:
var/secret-key, Django's SECRET_KEY; var/secrets-keys, the Fernet key that encrypts stored secrets. An
installation that already has a database from before these files existed keeps reading its secrets: the key
they were encrypted with (derived from the shipped SECRET_KEY) is kept second, for decryption only, until
`python manage.py secrets_reencrypt` has written them with the new key.

Imported by config/settings.py and dispatcher/crypto.py, so it imports nothing of Django.
"""
import base64
import hashlib
import os
import secrets
import sys
from pathlib import Path

# The shipped default only lets a development checkout start (DJANGO_DEBUG on); without debug the processes
# refuse it (dispatcher/checks.py).
INSECURE_SECRET_KEY = "insecure-dev-key-change-me-in-production-0123456789"


def derived_key(secret_key: str) -> str:
    """A Fernet key derived from SECRET_KEY: what encrypts secrets when no WEBHOOK_SECRETS_KEYS are set."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"webhook-secrets:" + secret_key.encode()).digest()).decode()


def var_dir() -> Path:
    # The folder of local state: SQLite file, file-system broker, keys, demo logins (bench runs move it).
    # Default: var/ in the project folder.
    return Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parents[1] / "var")


def _keep(path: Path, value: str) -> None:
    if path.exists():
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    print(f"Generated {path}", file=sys.stderr)


def main() -> None:
    from cryptography.fernet import Fernet

    var = var_dir()
    var.mkdir(mode=0o700, exist_ok=True)
    _keep(var / "secret-key", secrets.token_urlsafe(50))
    keys = [Fernet.generate_key().decode()]
    if (var / "db.sqlite3").exists() and not (var / "secrets-keys").exists():
        keys.append(derived_key(INSECURE_SECRET_KEY))
    _keep(var / "secrets-keys", " ".join(keys))


if __name__ == "__main__":
    main()

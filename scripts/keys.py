"""Generate the embedded default's keys once and keep them in var/ (run by scripts/bootstrap.sh).

var/secret-key: Django's SECRET_KEY; var/secrets-keys: the Fernet key that encrypts stored secrets. An
installation that already has a database from before these files existed keeps reading its secrets: the key
they were encrypted with (derived from the shipped SECRET_KEY) is kept second, for decryption only, until
`python manage.py secrets_reencrypt` has written them with the new key.
"""
import base64
import hashlib
import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

VAR = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parents[1] / "var")
SHIPPED = "insecure-dev-key-change-me-in-production-0123456789"  # config/settings.py INSECURE_SECRET_KEY


def keep(name: str, value: str) -> None:
    path = VAR / name
    if path.exists():
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    print(f"Generated {path}", file=sys.stderr)


def main() -> None:
    VAR.mkdir(mode=0o700, exist_ok=True)
    keep("secret-key", secrets.token_urlsafe(50))
    keys = [Fernet.generate_key().decode()]
    if (VAR / "db.sqlite3").exists() and not (VAR / "secrets-keys").exists():
        keys.append(base64.urlsafe_b64encode(hashlib.sha256(b"webhook-secrets:" + SHIPPED.encode()).digest()).decode())
    keep("secrets-keys", " ".join(keys))


if __name__ == "__main__":
    main()

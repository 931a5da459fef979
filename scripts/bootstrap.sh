# Sourced by dev.sh and test.sh: a virtual environment in .venv with the pinned requirements.
# Installs requirements-dev.txt (the runtime lock plus the test tools, every package pinned with
# its hashes) and re-installs only when a lock changed, so the second run starts at once.
umask 077  # what the product writes (var/: SQLite, broker messages, keys, logins) is the owner's only
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing requirements ..."
  # A download cut or corrupted on the way fails the hash check: fetch again once, past pip's cache.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt \
    || .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir --require-hashes \
      -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# Keys of the embedded default, generated once and kept in var/ (env variables, when set, win).
python -m config.keys

#!/usr/bin/env bash
# Install a Rucio *server* (pip `rucio`, gunicorn, SQLite) into its own virtualenv, for the tests
# and benchmarks that start one on 127.0.0.1 (tests/servers/rucio.py: RucioServer).
#
# The server gets its own virtualenv because `rucio` pins urllib3 1.x and other server-side
# dependencies that do not belong in the analysis environment (which only needs rucio-clients).
#
# Idempotent: when the virtualenv already holds the pinned rucio and gunicorn it does nothing.
#   HIGHRATE_RUCIO_VENV  where the virtualenv goes (default: <repo>/.venv-rucio, git-ignored)
#   HIGHRATE_RUCIO_VERSION  the rucio version to install (default below)
#   PYTHON  the interpreter to build the virtualenv with (default: python3)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${HIGHRATE_RUCIO_VENV:-$REPO/.venv-rucio}
RUCIO_VERSION=${HIGHRATE_RUCIO_VERSION:-41.5.1}
PYTHON=${PYTHON:-python3}

say() { echo "install-rucio: $*" >&2; }

installed() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/gunicorn" ] &&
        "$VENV/bin/python" - "$RUCIO_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
from importlib.util import find_spec

# the WSGI app itself needs a rucio.cfg to import, so only look for it here
import alembic  # noqa: F401  (build_database stamps the schema)
import flask  # noqa: F401  (the REST API)
import sqlalchemy  # noqa: F401  (the catalogue, SQLite)

if find_spec("rucio.web.rest.flaskapi.v1.main") is None:
    sys.exit(1)

sys.exit(0 if version("rucio") == sys.argv[1] else 1)
EOF
}

if installed; then
    say "rucio $RUCIO_VERSION already installed in $VENV"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
say "installing rucio==$RUCIO_VERSION and gunicorn into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "rucio==$RUCIO_VERSION" "gunicorn>=21"

if ! installed; then
    say "rucio is installed in $VENV but does not import; see the errors above"
    exit 1
fi
say "done: $VENV"

#!/usr/bin/env bash
# Pin the worker image's requirements: resolve highrate[remote,batch,kubernetes] for the image's
# Python (3.12, manylinux wheels only) with pip's resolver and write every package but highrate
# itself, name==version, to requirements.txt. Run from anywhere; needs pip >= 23 and an index.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
python -m pip install --quiet --dry-run --ignore-installed --report "$report" \
  --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --only-binary=:all: --target "$(mktemp -d)" "$root[remote,batch,kubernetes]"
python - "$report" > "$here/requirements.txt" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"])
print("# The worker image's dependencies, pinned: written by update-requirements.sh (do not edit).")
print("# highrate[remote,batch,kubernetes] resolved for CPython 3.12 on manylinux x86_64.")
for name, version in pins:
    if name.lower() != "highrate":
        print(f"{name}=={version}")
PY
echo "wrote $here/requirements.txt"

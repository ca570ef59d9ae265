#!/usr/bin/env bash
# Install the storage servers that the remote-data tests and benchmarks start on 127.0.0.1:
# an XRootD server and client, and nginx with the WebDAV extension module. Nothing is started
# or enabled here (tests/servers/storage.py starts its own server processes).
set -euo pipefail
bash "$(dirname "$0")/apt-install.sh" install-storage xrootd-server xrootd-client nginx libnginx-mod-http-dav-ext

#!/usr/bin/env bash
# Install the storage servers that the remote-data tests and benchmarks start on 127.0.0.1:
# an XRootD server and client, and nginx with the WebDAV extension module.
#
# Idempotent: packages are installed only when missing, and `apt-get update` runs only when a
# package has no installation candidate yet. Runs as root on Debian (bookworm); nothing is
# started or enabled here (tests/servers/storage.py starts its own server processes).
set -euo pipefail

PACKAGES=(xrootd-server xrootd-client nginx libnginx-mod-http-dav-ext)

say() { echo "install-storage: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "must run as root (it installs packages)"; exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    say "already installed: ${PACKAGES[*]}"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
has_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q "Candidate: [^(]"; }
for pkg in "${missing[@]}"; do
    if ! has_candidate "$pkg"; then
        say "refreshing the package lists"
        apt-get update -qq
        break
    fi
done

say "installing ${missing[*]}"
# policy-rc.d keeps the packages' maintainer scripts from starting nginx (port 80) on install
restore_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    restore_policy=1
fi
trap 'if [ -n "$restore_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
say "installed ${missing[*]}"

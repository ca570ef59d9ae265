#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: install the Debian packages that are missing, for the .ci scripts.
#
# Idempotent: packages are installed only when missing, and `apt-get update` runs only when a
# package has no installation candidate yet. Runs as root on Debian (bookworm). Nothing is started:
# policy-rc.d keeps the packages' maintainer scripts from starting services (nginx on port 80,
# nftables loading /etc/nftables.conf on the host).
set -euo pipefail

who=$1; shift
say() { echo "$who: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "must run as root (it installs packages)"; exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for pkg in "$@"; do
    installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    say "already installed: $*"
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

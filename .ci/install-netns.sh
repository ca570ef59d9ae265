#!/usr/bin/env bash
# Install what tests/test_broker_netns.py builds its firewalled hosts with: `ip` (iproute2) for
# network namespaces and veth pairs, `nft` (nftables) for the firewall inside them. Nothing is
# configured here: the tests make their own namespaces and rules, and remove them.
set -euo pipefail
bash "$(dirname "$0")/apt-install.sh" install-netns iproute2 nftables

#!/usr/bin/env bash
# Generates the dev Besu QBFT network docker/compose.yaml runs: 4 validator node keys, the genesis
# (QBFT extraData naming the 4 validators, zero base fee), static-nodes.json and the permissioning
# allowlists, into docker/besu/network/. Runs scripts/besu-network.ts with the repository's own
# Node and ethers: nothing is downloaded. Extra arguments are passed on, e.g.
#
#   docker/besu/generate-keys.sh --chain-id 20261128 --account 0xYourAnchorer --account 0xYourAdmin
#
# Regenerating replaces every key: the chain restarts from a new genesis (docker compose down -v).
# DEV ONLY: the keys are written in clear. A consortium generates each node's key on that node.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec node_modules/.bin/tsx scripts/besu-network.ts --out docker/besu/network "$@"

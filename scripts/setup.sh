#!/usr/bin/env bash
# Installs what Tether needs on a fresh Debian machine (the same steps CI runs): Debian build
# packages for the Kafka client, npm packages, the Kafka broker jars. Safe to run again.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../.ci/run" --setup-only

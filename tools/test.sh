#!/usr/bin/env bash
# Runs the test suite: unit tests, integration tests (CLI, config, runtime on
# the real MobileNetV2), from a fresh machine. This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo test --locked "$@"

#!/usr/bin/env bash
# Runs the test suite: unit tests, integration tests (CLI, config, runtime on
# the real MobileNetV2, service, replay), then the M-Trainer's smoke run (a
# tiny app trained end to end on Debian's CPU PyTorch, a few minutes) and its
# output checked in the Rust runtime, from a fresh machine. This is the
# README's test command. MAINSTREAM_SKIP_TRAINER=1 leaves the trainer out
# (quick local runs; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo test --locked "$@"
if [[ ${MAINSTREAM_SKIP_TRAINER:-0} != 1 ]]; then
    smoke_dir=$(mktemp -d)
    trap 'rm -rf "$smoke_dir"' EXIT
    bash trainer/smoke.sh "$smoke_dir"
    MAINSTREAM_TRAINER_SMOKE="$smoke_dir" cargo test --locked --test trainer_smoke -- --ignored
fi

#!/usr/bin/env bash
# The main job on the bundled default: build mainstream, validate the demo
# configuration (config + app drop-ins + M-Packages + base network), show the
# plan the scheduler picks for the demo apps on this machine (measuring the
# device cost profile first if needed), then run the service on the demo clip
# in real time: a live status line, events as they happen, and at the end each
# app's event recall, precision and F1 against the clip's ground truth.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --release --locked
bin=target/release/mainstream
echo "== mainstream check --config demo/config.toml"
"$bin" check --config demo/config.toml
echo "== mainstream plan --config demo/config.toml"
"$bin" plan --config demo/config.toml
echo "== mainstream demo (the service on the demo clip, 30 s in real time)"
"$bin" demo --config demo/config.toml

#!/usr/bin/env bash
# The main job on the bundled default: build mainstream, validate the demo
# configuration (config + app drop-ins + M-Packages + base network), show the
# plan the scheduler picks for the demo apps on this machine (measuring the
# device cost profile first if needed), and measure how much stem sharing
# speeds up 1 and 4 apps here.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --release --locked
bin=target/release/mainstream
echo "== mainstream check --config demo/config.toml"
"$bin" check --config demo/config.toml
echo "== mainstream plan --config demo/config.toml"
"$bin" plan --config demo/config.toml
echo "== mainstream bench --apps 1,4 --sharing none,max"
"$bin" bench --apps 1,4 --sharing none,max --frames 10 --runs 3

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
config=demo/config.toml
# As the systemd unit: mimalloc keeps freed pages rather than faulting them in
# again every frame (systemd/mainstream.service says why).
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1}
# MAINSTREAM_MQTT=HOST[:PORT]: the demo also publishes its events to that
# broker (MAINSTREAM_MQTT_USER and MAINSTREAM_MQTT_PASSWORD_FILE if it needs
# them). The config is a copy beside the demo's, so relative paths still hold.
if [[ -n ${MAINSTREAM_MQTT:-} ]]; then
  host=${MAINSTREAM_MQTT%%:*}
  port=${MAINSTREAM_MQTT#"$host"}
  port=${port#:}
  config=demo/.config-mqtt.toml
  trap 'rm -f demo/.config-mqtt.toml' EXIT
  {
    cat demo/config.toml
    printf '\n[output.mqtt]\nhost = "%s"\nport = %s\nclient_id = "mainstream-demo"\n' "$host" "${port:-1883}"
    if [[ -n ${MAINSTREAM_MQTT_USER:-} ]]; then
      printf 'username = "%s"\n' "$MAINSTREAM_MQTT_USER"
      printf 'password_file = "%s"\n' "$(realpath "${MAINSTREAM_MQTT_PASSWORD_FILE:?set MAINSTREAM_MQTT_PASSWORD_FILE too}")"
    fi
  } >"$config"
  echo "== events also go to $host:${port:-1883}; watch them with:"
  echo "   mosquitto_sub -h $host -p ${port:-1883} -v -t 'mainstream/#'"
fi
echo "== mainstream check --config $config"
"$bin" check --config "$config"
echo "== mainstream plan --config $config"
"$bin" plan --config "$config"
echo "== mainstream demo (the service on the demo clip, 30 s in real time)"
"$bin" demo --config "$config"

#!/bin/sh
# RUSTC_WRAPPER for a quick fuzz build (fuzz/README.md, "Quick build"):
# libFuzzer's coverage instrumentation, `--cfg fuzzing`, debug assertions and
# overflow checks for our own crates only (mainstream, mainstream-fuzz, the
# fuzz targets); every dependency, tract included, is built as for
# `cargo build --release`, uninstrumented, so it can be reused from the main
# tree's release build. The flags are cargo-fuzz 0.13's for `--sanitizer none
# --debug-assertions`, plus overflow checks.
rustc=$1
shift
case " $* " in
*" --crate-name mainstream "* | *" --crate-name mainstream_fuzz "* | *fuzz_targets/*)
    exec "$rustc" "$@" \
        -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        -Cllvm-args=-sanitizer-coverage-stack-depth \
        -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
        --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Ccodegen-units=1
    ;;
*) exec "$rustc" "$@" ;;
esac

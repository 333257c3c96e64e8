#!/bin/sh
# Runs the libFuzzer build of the policy parser for 20 s from the seed policies.
# Any crash, leak or sanitizer report makes libFuzzer exit non-zero.
set -eu
corpus="${TEST_TMPDIR}/corpus"
mkdir -p "$corpus"
cp bastion/policy/testdata/example.yaml "$corpus/"
bastion/policy/policy_fuzzer -max_total_time=20 -timeout=5 -rss_limit_mb=1024 \
  -artifact_prefix="${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}/" "$corpus" 2>&1 | tail -3

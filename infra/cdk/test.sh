#!/usr/bin/env bash
# infra/cdk's checks, offline (the npm registry is the only network it needs, for `npm ci`):
# install exactly package-lock.json, compile, run the tests (aws-cdk-lib/assertions and cdk-nag, in
# one process), then `cdk synth` the app as `cdk deploy` would, against throw-away Lambda assets
# (a dummy `bootstrap` per function: nothing is compiled, no Docker). scripts/test calls this.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> infra/cdk: %s\n' "$*"; }
start=$SECONDS

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "infra/cdk needs Node.js 20 or newer (node and npm on PATH)" >&2
  exit 1
fi
# The CDK CLI asks the internet for notices and may send telemetry; neither is wanted here.
export CDK_DISABLE_CLI_TELEMETRY=true

step "npm ci"
npm ci --no-audit --no-fund --prefer-offline

step "build"
npx tsc -p .

step "tests"
node --test-reporter=spec dist/test/all.js

step "cdk synth (dummy assets)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in receiver worker poller rotator; do
  mkdir -p "$tmp/lambda/olbridge-$f"
  printf '#!/bin/sh\n' > "$tmp/lambda/olbridge-$f/bootstrap"
done
# --build true: the sources were compiled above (cdk.json's build step would compile them again).
npx cdk synth --quiet --no-notices --build true -c lambdaDir="$tmp/lambda" -c alarmEmail=ops@example.com -o "$tmp/cdk.out"
test -s "$tmp/cdk.out/Olbridge-dev.template.json"
grep -q '"conclusion": "success"' "$tmp/cdk.out/validation-report.json"

echo
echo "infra/cdk: all checks passed in $((SECONDS - start)) s"

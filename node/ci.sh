#!/usr/bin/env bash
# CI for the Node.js package: install, one release build, the tests.
#
#   bash node/ci.sh
#
# Needs Rust, Node >= 20.17 with npm, and python3 (for the fake Zoho server). The interop
# tests also use the Python package: python3 that imports `tokenvault`, else the
# repository's .venv/bin/python, else TOKENVAULT_PYTHON. With TOKENVAULT_REQUIRE_SERVICES=1
# (as .ci/run sets it) a missing CLI or Python package fails the tests instead of skipping.
#
# The CLI for the interop tests: $TOKENVAULT_CLI, else `tokenvault` on PATH (in .ci/run, the
# one its main job just installed from this checkout), else one built here in the same cargo
# run as the addon (`npm run build -- -p tokenvault-cli`), so the library is compiled once,
# with the features both need, into the workspace's own target directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
NODE_DIR=$(pwd)
ROOT=$(cd .. && pwd)

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
node --version
npm --version
cargo --version
python3 --version
node -e '
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 17)) {
  console.error(`node ${process.versions.node}: the package needs Node >= 20.17`);
  process.exit(1);
}'

step "npm ci"
npm ci --no-audit --no-fund

if [[ -z "${TOKENVAULT_CLI:-}" ]] && command -v tokenvault >/dev/null 2>&1; then
    export TOKENVAULT_CLI=$(command -v tokenvault)
fi
start=$SECONDS
if [[ -n "${TOKENVAULT_CLI:-}" ]]; then
    step "release build: the addon"
    npm run build
else
    step "release build: the addon and the CLI, one cargo run"
    npm run build -- -p tokenvault-cli
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked --manifest-path "$ROOT/Cargo.toml" |
        node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')
    export TOKENVAULT_CLI="$TARGET_DIR/release/tokenvault"
fi
echo "build took $((SECONDS - start)) s"
if [[ -z "${TOKENVAULT_PYTHON:-}" ]] && ! python3 -c 'import tokenvault' >/dev/null 2>&1 &&
    [[ -x "$ROOT/.venv/bin/python" ]]; then
    export TOKENVAULT_PYTHON="$ROOT/.venv/bin/python"
fi

step "tests (node --test)"
echo "CLI: $TOKENVAULT_CLI; Python: ${TOKENVAULT_PYTHON:-python3}; TOKENVAULT_REQUIRE_SERVICES=${TOKENVAULT_REQUIRE_SERVICES:-unset}"
cd "$NODE_DIR"
npm test

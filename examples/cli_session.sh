#!/usr/bin/env bash
# A first session with the tokenvault CLI on the default SQLite backend, in a scratch
# directory: create a store, save a token from JSON, get it back, check the store.
# Run after `cargo install --locked --path cli` (or set TOKENVAULT_BIN to a built binary).
set -euo pipefail
tv=${TOKENVAULT_BIN:-tokenvault}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TOKENVAULT_STORE="sqlite:$dir/tokens.db"
export TOKENVAULT_PASSPHRASE="correct horse battery staple" # a prompt asks for it on a terminal

set -x
"$tv" init
echo '{"user_name":"ann@example.com","client_id":"1000.ANN","client_secret":"s3cret",
       "refresh_token":"1000.refresh","access_token":"1000.access","expiry_time":"1900000000000",
       "api_domain":"https://www.zohoapis.com"}' | "$tv" save
"$tv" list
"$tv" get --user ann@example.com
"$tv" get --user ann@example.com --field access_token
"$tv" verify
set +x

# The database holds no plaintext: search its files for the secrets and the user name.
for secret in s3cret 1000.refresh 1000.access ann@example.com; do
    if grep -rqa -- "$secret" "$dir"; then
        echo "plaintext $secret found on disk" >&2
        exit 1
    fi
done
echo "no plaintext in $(ls "$dir" | tr '\n' ' ')"

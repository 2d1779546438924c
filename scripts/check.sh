#!/usr/bin/env bash
# The project's test command: formatting, lints, the no_std builds and every test of the
# workspace, against real services (started here if they are not running).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/services.sh up
eval "$(scripts/services.sh env)"

step() { printf '\n==> %s\n' "$*"; }

if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
  step "adding the thumbv7em-none-eabihf target (no_std proof)"
  rustup target add thumbv7em-none-eabihf
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "no_std: nimbus-core and nimbus-firmware for thumbv7em-none-eabihf"
cargo build --locked -p nimbus-core --no-default-features --target thumbv7em-none-eabihf
cargo build --locked -p nimbus-firmware --target thumbv7em-none-eabihf

step "cargo test"
cargo test --workspace --locked

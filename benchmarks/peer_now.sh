#!/usr/bin/env bash
# Makes a copy of the shared peer harness's "portcullis" descriptor (../shared/peers/peers/portcullis)
# named portcullis-now, whose requirements add what this checkout needs beyond the shared file
# (the pins of this checkout's .venv), and prints the path of its peer.toml for run.sh --peer-file:
#
#   PORTCULLIS_CHECKOUT=$PWD ../shared/peers/run.sh --peers hello,dot,oidc-provider \
#     --peer-file "$(bash benchmarks/peer_now.sh)" --out /tmp/peers/results.md
#
# (The shared descriptor's own requirements lag behind the checkout's: its migrate fails on a
# missing app, e.g. drf_spectacular_sidecar.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${PEERS_DIR:-$root/../shared/peers}/peers/portcullis"
out="${1:-/tmp/peers-now/portcullis-now}"
mkdir -p "$out"
cp "$shared/provision.py" "$out/"
sed 's/^name = "portcullis"$/name = "portcullis-now"/' "$shared/peer.toml" > "$out/peer.toml"
{
  grep -v '^#' "$shared/requirements.txt"
  "$root/.venv/bin/pip" freeze --disable-pip-version-check \
    | grep -i -E '^(drf-spectacular-sidecar|qrcode|phonenumberslite|authlib|joserfc|prometheus.client|hiredis)=='
} | awk -F'==' '!seen[tolower($1)]++' > "$out/requirements.txt"
echo "$out/peer.toml"

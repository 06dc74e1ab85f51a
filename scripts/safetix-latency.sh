#!/bin/bash
# Phone-ticket (SafeTix) decision latency through the real binary against a separately
# started ats-sandbox (RELIABILITY.md section 10). Build first: cargo build --all-features.
set -u
cd "$(dirname "$0")/.."
T=$(mktemp -d)
${CARGO_TARGET_DIR:-target}/debug/ats-sandbox --listen 127.0.0.1:18463 > $T/sb.log 2>&1 &
SBPID=$!
sleep 1
SB=http://127.0.0.1:18463
cat > $T/agent.toml <<EOF
terminal_id = "m-stand"
store_dir = "$T/store"
events = ["EVENT01"]
[ats]
url = "$SB"
apikey = "sandbox-key"
[cache]
prefetch_at_start = false
[presence]
apikey = "sandbox-presence-key"
venue_id = "SANDBOX-PARK"
EOF
pay() { curl -s $SB/__sandbox/safetix/$1 | python3 -c 'import sys,json;print(json.load(sys.stdin)["payload"])'; }
show() { python3 -c '
import sys,json
for l in sys.stdin:
  d=json.loads(l)
  if d.get("type")=="decision": print(d["decision"],d["reason"],d["barcode"],d["source"],d["latency_ms"],"ms")'; }
for b in 100000000001 100000000002 100000000003 100000000008; do echo $b; done > $T/scans1
for b in 100000000001 100000000002 100000000003 100000000008; do pay $b; done >> $T/scans1
echo "--- online: 4 barcodes, then their phones"
while read l; do echo "$l"; sleep 0.3; done < $T/scans1 | ${CARGO_TARGET_DIR:-target}/debug/concession-agent --config $T/agent.toml run --pos jsonl 2>$T/err1 | show
echo "--- presence black-holed (deadline 2000 ms)"
curl -s -X POST $SB/__sandbox/presence/faults -d '{"black_hole":true}' >/dev/null
curl -s -X POST $SB/__sandbox/balance -d '{"barcode":"100000000008","av_id":"AV1008","balance":"50.00"}' >/dev/null
( pay 100000000001; pay 100000000010; pay 100000000001 ) > $T/scans2
while read l; do echo "$l"; sleep 2.5; done < $T/scans2 | ${CARGO_TARGET_DIR:-target}/debug/concession-agent --config $T/agent.toml run --pos jsonl 2>$T/err2 | show
curl -s -X POST $SB/__sandbox/presence/faults -d '{}' >/dev/null
kill $SBPID
rm -rf $T

#!/bin/bash
# Live migration of a guest on vdpad NICs between two "hosts" (network namespaces, each with
# its own vdpad and TLS migration channel), QEMU 7.2 under TCG, driven by vdpactl migrate.
#
# The guest first changes its MAC and turns promiscuous mode on (both through the control
# queue), then moves sequence-numbered frames through the device's loopback on two queue
# pairs while it migrates; every received payload lands in guest memory, where the program
# checks it, so a dirty page vdpad failed to log shows as corruption or a gap. After the
# migration, on the destination: frames sent to a foreign MAC must come back (promiscuous
# mode restored) on both queue pairs (the pair count restored), and the final counters of
# the continuous run must show nothing lost, duplicated or corrupted.
. "$(dirname "$0")/mig_lib.sh"
mig_attempts "$@"
. "$(dirname "$0")/lib.sh"
require_root
build_guest
mig_pki
mig_network

MAC0=52:54:00:5a:00:01    # the devices' MAC
MAC1=52:54:00:5a:00:99    # what the guest sets
FOREIGN=52:54:00:77:77:77
mig_host a --device "net:n0,mac=$MAC0,queues=2"
mig_host b --device "net:n0,mac=$MAC0,queues=2"
ok "two hosts: vdpad A on $MIG_IP_A:$MIG_PORT, vdpad B on $MIG_IP_B:$MIG_PORT, mutual TLS"

STEPS="vdpamode=stay"
STEPS+=" vdpatest=--set-mac=$MAC1,--promisc=on,--count=200"
STEPS+=" vdpatest=--continuous,--duration=22,--threads=2,--window=16"
STEPS+=" vdpatest=--dst=$FOREIGN,--count=600,--threads=2"
mig_qemu src a "$VDPAD_DIR_a/n0" "$STEPS" 2
mig_qemu dst b "$VDPAD_DIR_b/n0" "$STEPS" 2 -incoming "tcp:$MIG_IP_B:4444"
wait_console src 120 'NETTEST-PROGRESS t=3'
ok "the guest runs on A: MAC $MAC1 and promiscuous mode set, traffic on 2 queue pairs"

t0=$(date +%s%N)
"$top_builddir/src/tools/vdpactl" migrate --json --timeout 120 \
  --src-qmp "$E2E_WORK/src.qmp" --dst-qmp "$E2E_WORK/dst.qmp" \
  --src-bus "$BUS_a" --dst-bus "$BUS_b" --device n0 --source "$MIG_IP_A:$MIG_PORT" \
  "tcp:$MIG_IP_B:4444" >"$E2E_WORK/migrate.json" 2>"$E2E_WORK/migrate.err" ||
  die "vdpactl migrate failed: $(cat "$E2E_WORK/migrate.err")"
ok "vdpactl migrate completed in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(python3 -c '
import json,sys; j=json.load(open(sys.argv[1]))
print("QEMU downtime", j.get("downtime_ms"), "ms, vdpad switch-in", j.get("switch_in_ms"), "ms, restore", j.get("restore_ms"), "ms, device downtime", j.get("device_downtime_ms"), "ms")' "$E2E_WORK/migrate.json")"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if (j.get("device_downtime_ms") or 0) > 0 else 1)' \
  "$E2E_WORK/migrate.json" || die "vdpactl migrate measured no device downtime: $(cat "$E2E_WORK/migrate.json")"

grep -q "n0: stopped for a migration" "$VDPAD_DIR_a/../vdpad.log" || die "vdpad A recorded no migration stop"
grep -q "got n0's state from $MIG_IP_A:$MIG_PORT" "$VDPAD_DIR_b/../vdpad.log" ||
  die "vdpad B did not fetch the state over the channel"
grep -q "restored the device state" "$VDPAD_DIR_b/../vdpad.log" || die "vdpad B did not restore the state"
ok "vdpad B fetched A's final state over TLS and replayed it before the data queues started: $(grep -a 'restored the device state' "$VDPAD_DIR_b/../vdpad.log" | tail -1 | sed 's/.*n0: //')"

wait_console dst 120 'GUEST-STEP-RC i=3'
grep -aq 'GUEST-UP' "$E2E_WORK/dst.console" && die "the guest rebooted on B"
cont=$(grep -a '^NETTEST ' "$E2E_WORK/dst.console" | sed -n 1p | tr -d '\r')
after=$(grep -a '^NETTEST ' "$E2E_WORK/dst.console" | sed -n 2p | tr -d '\r')
[ -n "$cont" ] && [ -n "$after" ] || die "the destination console lacks the run summaries"
for k in lost dup corrupt; do
  [ "$(field "$cont" $k)" = 0 ] || die "continuous run across the migration: $k=$(field "$cont" $k): $cont"
done
[ "$(field "$cont" received)" -gt 1000 ] || die "too little traffic crossed the migration: $cont"
ok "$(field "$cont" received) frames crossed the migration: 0 lost, 0 duplicated, 0 corrupted"
[ "$(field "$after" received)" = 600 ] && [ "$(field "$after" mac)" = "$MAC1" ] ||
  die "after the migration, frames to a foreign MAC (promiscuous) did not all come back: $after"
q=$(grep -a 'NETTEST-QUEUES' "$E2E_WORK/dst.console" | tail -1 | tr -d '\r')
tx1=$(sed -n 's/.*tx=q0:[0-9]*,q1:\([0-9]*\).*/\1/p' <<<"$q")
[ "${tx1:-0}" -gt 0 ] || die "after the migration the second queue pair carried nothing: $q"
ok "on B the guest's MAC $MAC1, promiscuous mode and both queue pairs are in effect"

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
# the continuous run must show nothing lost, duplicated or corrupted. A D-Bus client
# (vdpactl monitor --json) on each host follows the steps: ModeChanged to relay,
# DirtyPagesLogged and Stopped on A, StateRestored on B.
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

mig_monitor_start a "$E2E_WORK/a.events"
mig_monitor_start b "$E2E_WORK/b.events"
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

restored_on_b() { grep -q '"signal":"StateRestored"' "$E2E_WORK/b.events"; }
wait_for 10 "StateRestored on B's bus" restored_on_b || die "B's monitor saw no StateRestored"
mig_monitor_stop a; mig_monitor_stop b
steps=$(python3 - "$E2E_WORK/a.events" "$E2E_WORK/b.events" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
def idx(events, sig, pred=lambda e: True):
    return [i for i, e in enumerate(events) if e["signal"] == sig and pred(e)]
relay = idx(a, "ModeChanged", lambda e: e["args"]["mode"] == "relay")
stop = idx(a, "Stopped")
dirty = idx(a, "DirtyPagesLogged", lambda e: e["args"]["total_marks"] > 0)
assert len(relay) == 1 and a[relay[0]]["args"]["switch_ms"] > 0, ("ModeChanged", relay)
assert len(stop) == 1 and stop[0] > relay[0], ("Stopped after the switch", stop, relay)
queues = sorted(q["Queue"] for q in a[stop[0]]["args"]["bases"])
assert queues == [0, 1, 2, 3, 4], ("Stopped names every queue", queues)
assert dirty and dirty[0] > relay[0], ("DirtyPagesLogged after the switch", dirty)
assert not idx(a, "MigrationFailed") and not idx(b, "MigrationFailed"), "MigrationFailed"
restored = idx(b, "StateRestored")
assert len(restored) == 1 and b[restored[0]]["args"]["commands"] >= 3, ("StateRestored", restored)
print("A: ModeChanged relay (%.3f ms), DirtyPagesLogged (up to %d), Stopped (queues %s); B: StateRestored (%d commands, %.3f ms)" % (
    a[relay[0]]["args"]["switch_ms"], max(a[i]["args"]["total_marks"] for i in dirty),
    ",".join(map(str, queues)), b[restored[0]]["args"]["commands"], b[restored[0]]["args"]["ms"]))
PY
) || die "the D-Bus signals do not tell the migration's steps"
ok "D-Bus: vdpactl monitor saw, in order, $steps"
grep -q "n0: stopped for a migration" "$VDPAD_DIR_a/../vdpad.log" || die "vdpad A recorded no migration stop"
# B asked as soon as it was prepared, and A answered at its stop: the TLS connection is
# not part of the device downtime
grep -q "got n0's state from $MIG_IP_A:$MIG_PORT early" "$VDPAD_DIR_b/../vdpad.log" ||
  die "vdpad B did not get the state over the channel before its device started: $(grep -a "state" "$VDPAD_DIR_b/../vdpad.log" | tail -3)"
grep -q "restored the device state" "$VDPAD_DIR_b/../vdpad.log" || die "vdpad B did not restore the state"
ok "vdpad B had A's final state (asked over TLS when prepared, answered at A's stop) and replayed it before the data queues started: $(grep -a 'restored the device state' "$VDPAD_DIR_b/../vdpad.log" | tail -1 | sed 's/.*n0: //')"

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

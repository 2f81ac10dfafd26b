#!/bin/bash
# Migrations that fail, and what the guest sees: nothing. One guest on host A moves frames
# on two queue pairs the whole time while four migrations to host B fail:
#   1. migrate_cancel mid-way: vdpad A switches back to passthrough;
#   2. the destination QEMU is killed mid-way: QEMU stops logging, vdpad A switches back;
#   3. the destination vdpad cannot reach the source's channel: refused before it starts;
#   4. a destination vdpad whose certificates come from another CA: refused as not
#      authenticated, before it starts.
# At the end the guest is still on A, never rebooted, and its continuous run counts no frame
# lost, duplicated or corrupted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mig_lib.sh"
require_root
build_guest
mig_pki
mig_pki "$E2E_WORK/pki-foreign"
mig_network

VDPACTL=$top_builddir/src/tools/vdpactl
mig_host a --device "net:n0,mac=52:54:00:5c:00:01,queues=2"
mig_host b --device "net:n0,mac=52:54:00:5c:00:01,queues=2"
MIG_ON=b MIG_LISTEN_PORT=16517 MIG_PKI_DIR=$E2E_WORK/pki-foreign/b mig_host c \
  --device "net:n0,mac=52:54:00:5c:00:01,queues=2"

mig_qemu src a "$VDPAD_DIR_a/n0" \
  "vdpamode=stay vdpatest=--continuous,--duration=900,--threads=2,--window=16" 2
wait_console src 120 'NETTEST-PROGRESS t=2'
ok "the guest runs on A with traffic on 2 queue pairs"
# slow enough (about 25 s for the guest's RAM) to act while it runs
"$VDPACTL" qmp "$E2E_WORK/src.qmp" migrate-set-parameters '{"max-bandwidth": 10000000}' >/dev/null ||
  die "cannot limit the migration bandwidth"

relays() { grep -c 'n0: switched to relay' "$VDPAD_DIR_a/../vdpad.log" || true; }
passthroughs() { grep -c 'n0: switched to passthrough' "$VDPAD_DIR_a/../vdpad.log" || true; }
relays_at_least() { [ "$(relays)" -ge "$1" ]; }
passthroughs_at_least() { [ "$(passthroughs)" -ge "$1" ]; }
src_running() {
  "$VDPACTL" qmp "$E2E_WORK/src.ctl" query-status | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["status"] == "running" else 1)'
}
migrate_bg() {  # NAME DSTBUS PORT SOURCE -> MPID
  "$VDPACTL" migrate --json --timeout 120 --src-qmp "$E2E_WORK/src.qmp" --dst-qmp "$E2E_WORK/$1.qmp" \
    --src-bus "$BUS_a" --dst-bus "$2" --device n0 --source "$4" "tcp:$MIG_IP_B:$3" \
    >"$E2E_WORK/$1.migrate.json" 2>"$E2E_WORK/$1.migrate.err" &
  MPID=$!
}

# 1. cancel
mig_qemu dst1 b "$VDPAD_DIR_b/n0" "vdpamode=stay" 2 -incoming "tcp:$MIG_IP_B:4501"
migrate_bg dst1 "$BUS_b" 4501 "$MIG_IP_A:$MIG_PORT"
wait_for 30 "the switch to relay" relays_at_least 1 || die "vdpad A never switched to relay"
sleep 2
"$VDPACTL" qmp "$E2E_WORK/src.ctl" migrate_cancel >/dev/null || die "migrate_cancel failed"
wait "$MPID" && die "vdpactl migrate succeeded although the migration was cancelled"
wait_for 10 "the switch back" passthroughs_at_least 1 || die "vdpad A did not switch back to passthrough"
src_running || die "the source QEMU is not running after the cancel"
ok "migrate_cancel mid-way: vdpad A switched back to passthrough, the guest runs on A ($(tail -c 200 "$E2E_WORK/dst1.migrate.err" | tr '\n' ' '))"
kill "$QEMU_PID_dst1" 2>/dev/null || true; wait_exit "$QEMU_PID_dst1" 10 || true
vdpactl_on b cancel-incoming n0 || die "cannot cancel B's prepared restore"

# 2. the destination QEMU dies
mig_qemu dst2 b "$VDPAD_DIR_b/n0" "vdpamode=stay" 2 -incoming "tcp:$MIG_IP_B:4502"
migrate_bg dst2 "$BUS_b" 4502 "$MIG_IP_A:$MIG_PORT"
wait_for 30 "the switch to relay" relays_at_least 2 || die "vdpad A did not switch to relay again"
sleep 2
kill -KILL "$QEMU_PID_dst2"
wait "$MPID" && die "vdpactl migrate succeeded although the destination died"
wait_for 20 "the switch back" passthroughs_at_least 2 || die "vdpad A did not switch back after the destination died"
src_running || die "the source QEMU is not running after the destination died"
ok "destination QEMU killed mid-way: the migration failed, vdpad A is back in passthrough, the guest runs on A"
vdpactl_on b cancel-incoming n0 || die "cannot cancel B's prepared restore"

# 3. the destination vdpad cannot reach the source's channel
mig_qemu dst3 b "$VDPAD_DIR_b/n0" "vdpamode=stay" 2 -incoming "tcp:$MIG_IP_B:4503"
migrate_bg dst3 "$BUS_b" 4503 "$MIG_IP_A:1"
wait "$MPID" && die "vdpactl migrate succeeded with an unreachable source"
grep -qi 'unreachable\|refused' "$E2E_WORK/dst3.migrate.err" ||
  die "the refusal does not say the source is unreachable: $(cat "$E2E_WORK/dst3.migrate.err")"
[ "$(relays)" = 2 ] || die "vdpad A switched to relay although the migration was refused"
ok "unreachable source: refused before the migration started ($(head -c 160 "$E2E_WORK/dst3.migrate.err"))"
kill "$QEMU_PID_dst3" 2>/dev/null || true; wait_exit "$QEMU_PID_dst3" 10 || true

# 4. a destination vdpad from another CA
mig_qemu dst4 b "$VDPAD_DIR_c/n0" "vdpamode=stay" 2 -incoming "tcp:$MIG_IP_B:4504"
migrate_bg dst4 "$BUS_c" 4504 "$MIG_IP_A:$MIG_PORT"
wait "$MPID" && die "vdpactl migrate succeeded with an unauthenticated destination"
grep -qi 'auth\|certificate\|untrusted' "$E2E_WORK/dst4.migrate.err" ||
  die "the refusal does not say authentication failed: $(cat "$E2E_WORK/dst4.migrate.err")"
[ "$(relays)" = 2 ] || die "vdpad A switched to relay although the migration was refused"
ok "destination with certificates of another CA: refused as not authenticated ($(head -c 160 "$E2E_WORK/dst4.migrate.err"))"
kill "$QEMU_PID_dst4" 2>/dev/null || true; wait_exit "$QEMU_PID_dst4" 10 || true

# the guest never noticed
console_send src stop
wait_console src 60 '^NETTEST '
res=$(grep -a '^NETTEST ' "$E2E_WORK/src.console" | tail -1 | tr -d '\r')
grep -aq 'Kernel panic' "$E2E_WORK/src.console" && die "the guest panicked on A"
for k in lost dup corrupt; do
  [ "$(field "$res" $k)" = 0 ] || die "across the failed migrations: $k=$(field "$res" $k): $res"
done
ok "$(field "$res" received) frames across four failed migrations: 0 lost, 0 duplicated, 0 corrupted"

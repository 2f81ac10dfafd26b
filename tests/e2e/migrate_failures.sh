#!/bin/bash
# Migrations that fail, and what the guest sees: nothing. One guest on host A sets its own
# MAC (control queue), then moves frames to it on two queue pairs the whole time. First the
# VM is paused and resumed (QMP stop, cont: QEMU 7.2 resets the device at the stop, and
# vdpad A replays the guest's state when the device resumes where it stopped); then five
# migrations to host B fail:
#   1. migrate_cancel mid-way: vdpad A switches back to passthrough;
#   2. the destination QEMU is killed mid-way: QEMU stops logging, vdpad A switches back;
#   3. the destination vdpad cannot reach the source's channel: refused before it starts;
#   4. a destination vdpad whose certificates come from another CA: refused as not
#      authenticated, before it starts;
#   5. the destination cannot get the state when its device starts (prepared with a token
#      that names no session on A: PrepareIncoming checks only that the source answers and
#      authenticates): QEMU's migration completes, but vdpad B fails the restore
#      (MigrationFailed, seen by a D-Bus monitor) and keeps its data queues stopped; as
#      libvirt does when a migration's finish fails, the destination is killed and the
#      source resumed (cont): vdpad A restores the state it recorded at the stop
#      (StateRestored: the device was reset at the stop, and without the guest's MAC no
#      frame would come back) and the guest runs on.
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

mig_qemu src a "$VDPAD_DIR_a/n0" "vdpamode=stay vdpatest=--set-mac=52:54:00:5c:00:99,--count=200 \
vdpatest=--continuous,--duration=900,--threads=2,--window=16" 2
wait_console src 120 'NETTEST-PROGRESS t=2'
ok "the guest runs on A with traffic on 2 queue pairs"
# slow enough (about 25 s for the guest's RAM) to act while it runs
"$VDPACTL" qmp "$E2E_WORK/src.qmp" migrate-set-parameters '{"max-bandwidth": 10000000}' >/dev/null ||
  die "cannot limit the migration bandwidth"

relays() { grep -c 'n0: switched to relay' "$VDPAD_DIR_a/../vdpad.log" || true; }
passthroughs() { grep -c 'n0: switched to passthrough' "$VDPAD_DIR_a/../vdpad.log" || true; }
relays_at_least() { [ "$(relays)" -ge "$1" ]; }
passthroughs_at_least() { [ "$(passthroughs)" -ge "$1" ]; }
src_status_is() {  # STATUS
  "$VDPACTL" qmp "$E2E_WORK/src.ctl" query-status | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["status"] == sys.argv[1] else 1)' "$1"
}
src_running() { src_status_is running; }
restores_on_a() { grep -c 'n0: restored the device state' "$VDPAD_DIR_a/../vdpad.log" || true; }
migrate_bg() {  # NAME DSTBUS PORT SOURCE -> MPID
  "$VDPACTL" migrate --json --timeout 120 --src-qmp "$E2E_WORK/src.qmp" --dst-qmp "$E2E_WORK/$1.qmp" \
    --src-bus "$BUS_a" --dst-bus "$2" --device n0 --source "$4" "tcp:$MIG_IP_B:$3" \
    >"$E2E_WORK/$1.migrate.json" 2>"$E2E_WORK/$1.migrate.err" &
  MPID=$!
}

# 0. the VM paused and resumed
"$VDPACTL" qmp "$E2E_WORK/src.ctl" stop >/dev/null || die "QMP stop failed"
wait_for 10 "the VM paused" src_status_is paused || die "the source VM did not pause"
sleep 1
"$VDPACTL" qmp "$E2E_WORK/src.ctl" cont >/dev/null || die "QMP cont failed"
restored_once() { [ "$(restores_on_a)" -ge 1 ]; }
wait_for 10 "vdpad A's restore at the resume" restored_once ||
  die "vdpad A did not replay the guest's state when the VM resumed"
src_running || die "the source VM does not run after cont"
ok "the VM paused and resumed: vdpad A replayed the guest's state ($(grep -a 'n0: restored the device state' "$VDPAD_DIR_a/../vdpad.log" | tail -1 | sed 's/.*n0: //' | cut -c1-48)...)"

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

# refused_before_start NAME NODE BUS PORT SOURCE PATTERN WHAT — a migration to a fresh
# destination QEMU on NODE that PrepareIncoming refuses: vdpactl migrate fails with an error
# matching PATTERN (grep -i), and vdpad A never switched to relay for it
refused_before_start() {
  local name=$1 node=$2 bus=$3 port=$4 source=$5 pattern=$6 what=$7 qpid
  mig_qemu "$name" b "$node" "vdpamode=stay" 2 -incoming "tcp:$MIG_IP_B:$port"
  migrate_bg "$name" "$bus" "$port" "$source"
  wait "$MPID" && die "vdpactl migrate succeeded with $what"
  grep -qi "$pattern" "$E2E_WORK/$name.migrate.err" ||
    die "the refusal does not say so ($what): $(cat "$E2E_WORK/$name.migrate.err")"
  [ "$(relays)" = 2 ] || die "vdpad A switched to relay although the migration was refused"
  qpid=QEMU_PID_$name
  kill "${!qpid}" 2>/dev/null || true; wait_exit "${!qpid}" 10 || true
}

# 3. the destination vdpad cannot reach the source's channel
refused_before_start dst3 "$VDPAD_DIR_b/n0" "$BUS_b" 4503 "$MIG_IP_A:1" 'unreachable\|refused' \
  "an unreachable source"
ok "unreachable source: refused before the migration started ($(head -c 160 "$E2E_WORK/dst3.migrate.err"))"

# 4. a destination vdpad from another CA
refused_before_start dst4 "$VDPAD_DIR_c/n0" "$BUS_c" 4504 "$MIG_IP_A:$MIG_PORT" \
  'auth\|certificate\|untrusted' "an unauthenticated destination"
ok "destination with certificates of another CA: refused as not authenticated ($(head -c 160 "$E2E_WORK/dst4.migrate.err"))"

# 5. the destination's restore fails after the source stopped
"$VDPACTL" qmp "$E2E_WORK/src.ctl" migrate-set-parameters '{"max-bandwidth": 1000000000}' >/dev/null ||
  die "cannot lift the migration bandwidth limit"
mig_qemu dst5 b "$VDPAD_DIR_b/n0" "vdpamode=stay" 2 -incoming "tcp:$MIG_IP_B:4505"
vdpactl_on b prepare-incoming n0 "$MIG_IP_A:$MIG_PORT" n0 0123456789abcdef0123456789abcdef ||
  die "PrepareIncoming with a token of no session was refused (it checks only the source)"
mig_monitor_start a "$E2E_WORK/a.5.events"
mig_monitor_start b "$E2E_WORK/b.5.events"
restores_a0=$(restores_on_a)
"$VDPACTL" qmp "$E2E_WORK/src.ctl" migrate "{\"uri\": \"tcp:$MIG_IP_B:4505\"}" >/dev/null ||
  die "QMP migrate to dst5 failed"
wait_for 120 "the source's end of the migration" src_status_is postmigrate ||
  die "the migration to dst5 did not complete: $("$VDPACTL" qmp "$E2E_WORK/src.ctl" query-migrate)"
failed_on_b() { grep -q '"signal": *"MigrationFailed"' "$E2E_WORK/b.5.events"; }
wait_for 20 "MigrationFailed from vdpad B" failed_on_b || die "vdpad B signalled no MigrationFailed: $(cat "$E2E_WORK/b.5.events")"
why=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["signal"] == "MigrationFailed": print(e["args"]["reason"])' "$E2E_WORK/b.5.events" | tail -1)
grep -qi 'token' <<<"$why" || die "MigrationFailed does not say the source knew no such session: $why"
grep -q 'n0: .*the data queues stay stopped' "$VDPAD_DIR_b/../vdpad.log" ||
  die "vdpad B does not say its data queues stay stopped"
ok "restore failed on the destination: MigrationFailed ($(head -c 160 <<<"$why")); its data queues stay stopped"
kill "$QEMU_PID_dst5" 2>/dev/null || true; wait_exit "$QEMU_PID_dst5" 10 || true
"$VDPACTL" qmp "$E2E_WORK/src.ctl" cont >/dev/null || die "cont on the source failed"
restored_on_a() { [ "$(restores_on_a)" -gt "$restores_a0" ]; }
wait_for 20 "vdpad A's restore of its own state" restored_on_a || die "vdpad A did not restore the state it stopped with"
restored_signal_a() { grep -q '"signal": *"StateRestored"' "$E2E_WORK/a.5.events"; }
wait_for 10 "StateRestored from vdpad A" restored_signal_a || die "vdpad A signalled no StateRestored: $(cat "$E2E_WORK/a.5.events")"
src_running || die "the source QEMU does not run after cont"
mig_monitor_stop a; mig_monitor_stop b
lines0=$(grep -ac '^NETTEST-PROGRESS' "$E2E_WORK/src.console")
more_progress() { [ "$(grep -ac '^NETTEST-PROGRESS' "$E2E_WORK/src.console")" -ge $((lines0 + 2)) ]; }
wait_for 30 "the guest's traffic on A" more_progress || die "the guest's traffic did not resume on A"
ok "the source resumed: vdpad A restored its own stopped state ($(grep -a 'n0: restored the device state' "$VDPAD_DIR_a/../vdpad.log" | tail -1 | sed 's/.*n0: //' | cut -c1-60)...) and the guest's traffic runs on"

# the guest never noticed
console_send src stop
wait_console src 60 'GUEST-STEP-RC i=2 '
res=$(grep -a '^NETTEST .*mode=continuous' "$E2E_WORK/src.console" | tail -1 | tr -d '\r')
[ -n "$res" ] || die "the guest's continuous run printed no summary"
grep -aq 'Kernel panic' "$E2E_WORK/src.console" && die "the guest panicked on A"
for k in lost dup corrupt; do
  [ "$(field "$res" $k)" = 0 ] || die "across the failed migrations: $k=$(field "$res" $k): $res"
done
ok "$(field "$res" received) frames across five failed migrations: 0 lost, 0 duplicated, 0 corrupted"

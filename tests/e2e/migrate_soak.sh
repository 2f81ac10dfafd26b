#!/bin/bash
# Soak: MIGRATIONS (default 20) consecutive live migrations back and forth between two
# vdpad hosts while the guest moves sequence-numbered frames on two queue pairs the whole
# time. After each migration the old QEMU is stopped (as libvirt does), freeing its node for
# the way back. At the end, on the last host: nothing lost, duplicated or corrupted over all
# migrations, no reboot, and the MAC and promiscuous mode the guest set before the first
# migration still in effect.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mig_lib.sh"
require_root
build_guest
mig_pki
mig_network

MIGRATIONS=${MIGRATIONS:-20}
MAC0=52:54:00:5b:00:01
MAC1=52:54:00:5b:00:99
FOREIGN=52:54:00:77:77:77
mig_host a --device "net:n0,mac=$MAC0,queues=2"
mig_host b --device "net:n0,mac=$MAC0,queues=2"

DURATION=$(( MIGRATIONS * 15 + 60 ))   # an upper bound: the run is stopped after the last migration
STEPS="vdpamode=stay"
STEPS+=" vdpatest=--set-mac=$MAC1,--promisc=on,--count=200"
STEPS+=" vdpatest=--continuous,--duration=$DURATION,--threads=2,--window=16,--max-seconds=$((DURATION + 120))"
STEPS+=" vdpatest=--dst=$FOREIGN,--count=400,--threads=2"
mig_qemu g0 a "$VDPAD_DIR_a/n0" "$STEPS" 2
wait_console g0 120 'NETTEST-PROGRESS t=2'
ok "the guest runs on A with traffic on 2 queue pairs; $MIGRATIONS migrations follow"

cur=g0; curhost=a
t_start=$(date +%s)
for k in $(seq "$MIGRATIONS"); do
  if [ $curhost = a ]; then dst=b; dstip=$MIG_IP_B; srcip=$MIG_IP_A; else dst=a; dstip=$MIG_IP_A; srcip=$MIG_IP_B; fi
  next=g$k
  port=$((4400 + k))
  dirvar="VDPAD_DIR_$dst"
  mig_qemu "$next" "$dst" "${!dirvar}/n0" "$STEPS" 2 -incoming "tcp:$dstip:$port"
  srcbus="BUS_$curhost"; dstbus="BUS_$dst"
  "$top_builddir/src/tools/vdpactl" migrate --json --timeout 120 \
    --src-qmp "$E2E_WORK/$cur.qmp" --dst-qmp "$E2E_WORK/$next.qmp" \
    --src-bus "${!srcbus}" --dst-bus "${!dstbus}" --device n0 --source "$srcip:$MIG_PORT" \
    "tcp:$dstip:$port" >"$E2E_WORK/migrate-$k.json" 2>"$E2E_WORK/migrate-$k.err" ||
    die "migration $k ($curhost -> $dst) failed: $(cat "$E2E_WORK/migrate-$k.err")"
  down=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("downtime_ms"))' "$E2E_WORK/migrate-$k.json")
  # the source QEMU ends, as libvirt ends it after a migration: its node is free again
  pidvar="QEMU_PID_$cur"
  kill "${!pidvar}"; wait_exit "${!pidvar}" 10 || die "the old QEMU $cur did not exit"
  grep -aq 'Kernel panic\|GUEST-UP' "$E2E_WORK/$next.console" && die "migration $k: the guest rebooted or panicked on $dst"
  log "migration $k: $curhost -> $dst done (QEMU downtime $down ms)"
  cur=$next; curhost=$dst
done
ok "$MIGRATIONS migrations in $(( $(date +%s) - t_start )) s, each restored by the destination vdpad"

sleep 2
console_send "$cur" stop   # ends the continuous run (it drains and prints its summary)
wait_console "$cur" 120 'GUEST-STEP-RC i=3'
cont=$(grep -a '^NETTEST ' "$E2E_WORK/$cur.console" | sed -n 1p | tr -d '\r')
after=$(grep -a '^NETTEST ' "$E2E_WORK/$cur.console" | sed -n 2p | tr -d '\r')
for k in lost dup corrupt; do
  [ "$(field "$cont" $k)" = 0 ] || die "over $MIGRATIONS migrations: $k=$(field "$cont" $k): $cont"
done
ok "$(field "$cont" received) frames over $MIGRATIONS migrations: 0 lost, 0 duplicated, 0 corrupted"
[ "$(field "$after" received)" = 400 ] && [ "$(field "$after" mac)" = "$MAC1" ] ||
  die "after the last migration the restored state is wrong: $after"
ok "after $MIGRATIONS migrations the guest's MAC $MAC1 and promiscuous mode are in effect"
restores=$(cat "$VDPAD_DIR_a/../vdpad.log" "$VDPAD_DIR_b/../vdpad.log" | grep -c 'restored the device state')
[ "$restores" = "$MIGRATIONS" ] || die "$restores restores for $MIGRATIONS migrations"
ok "every migration's destination restored the state ($restores restores)"

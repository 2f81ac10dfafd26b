#!/bin/bash
# QEMU 7.2 (TCG) with -netdev vhost-vdpa on a vdpad node backed by the simulated NIC:
# the guest's virtio-net driver negotiates, maps memory through the IOTLB, and moves
# sequence-numbered frames through the device's loopback on two queue pairs; a MAC set
# by the guest through the control queue changes which frames come back.
. "$(dirname "$0")/lib.sh"
require_root
build_guest

MAC1=52:54:00:aa:00:01
MAC2=52:54:00:ab:cd:ef
start_vdpad v0 --device "net:n0,mac=$MAC1,queues=2"
NODE=$VDPAD_DIR_v0/n0
[ -f "$NODE" ] || die "node $NODE missing"
ok "vdpad serves $NODE"

STEPS="vdpatest=--expect-mac=$MAC1,--count=3000,--threads=2,--size=60-1500"
STEPS+=" vdpatest=--set-mac=$MAC2,--expect-mac=$MAC2,--count=1000"
STEPS+=" vdpatest=--expect-none,--dst=$MAC1,--count=200"
start_qemu g0 256 2 "$STEPS" \
  -netdev "vhost-vdpa,vhostdev=$NODE,id=n0" -device virtio-net-pci,netdev=n0,mq=on,vectors=6
wait_console g0 120 'GUEST-NET-UP'
up=$(console_line g0 'GUEST-NET-UP')
[ "$(field "$up" mac)" = "$MAC1" ] || die "guest eth0 MAC is $(field "$up" mac), device config says $MAC1"
ok "guest eth0 has the device's MAC $MAC1 (read from config space through GET_CONFIG)"
wait_console g0 300 'GUEST-DONE'
wait_exit "$QEMU_PID_g0" 30 || die "guest did not power off"

steps=$(grep -a 'NETTEST \|GUEST-STEP-RC' "$E2E_WORK/g0.console" | tr -d '\r')
r1=$(grep -a 'NETTEST ' <<<"$steps" | sed -n 1p)
r2=$(grep -a 'NETTEST ' <<<"$steps" | sed -n 2p)
r3=$(grep -a 'NETTEST ' <<<"$steps" | sed -n 3p)
[ -n "$r3" ] || die "the guest did not run all three steps"
for k in lost dup corrupt; do
  [ "$(field "$r1" $k)" = 0 ] || die "step 1: $k=$(field "$r1" $k): $r1"
done
[ "$(field "$r1" received)" = 3000 ] || die "step 1: received $(field "$r1" received) of 3000"
ok "3000 frames (60-1500 B) from 2 threads came back exactly once, intact"
q=$(grep -a 'NETTEST-QUEUES' "$E2E_WORK/g0.console" | sed -n 1p | tr -d '\r')
tx0=$(sed -n 's/.*tx=q0:\([0-9]*\).*/\1/p' <<<"$q"); tx1=$(sed -n 's/.*q1:\([0-9]*\).*/\1/p' <<<"$q")
[ "${tx0:-0}" -gt 0 ] && [ "${tx1:-0}" -gt 0 ] || die "traffic did not use both queue pairs: $q"
ok "both queue pairs carried traffic ($q)"
[ "$(field "$r2" received)" = 1000 ] && [ "$(field "$r2" lost)" = 0 ] || die "step 2 after MAC change: $r2"
ok "after the guest set MAC $MAC2 (control queue MAC_ADDR_SET) frames to it come back"
[ "$(field "$r3" received)" = 0 ] || die "step 3: frames to the old MAC came back: $r3"
ok "frames to the old MAC $MAC1 are filtered by the device"
grep -a 'GUEST-DONE' "$E2E_WORK/g0.console" | grep -q 'rc=0' || die "guest reported failure: $(console_line g0 GUEST-DONE)"

# the node is free again once QEMU is gone: the session ended and the device was reset
wait_for 10 "session closed" grep -q 'n0: closed' "$VDPAD_DIR_v0/../vdpad.log" ||
  die "vdpad did not see the node closed"
ok "QEMU exit closed the session and reset the device"

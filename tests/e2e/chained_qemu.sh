#!/bin/bash
# The production topology without the hardware: QEMU 7.2 -> vdpad A, whose backend is the
# kernel vhost-vdpa uAPI client, -> vdpad B serving the simulated NIC. vdpad A re-issues
# the IOTLB with its own mapping of guest RAM and hands QEMU's eventfds to B, exactly as it
# would to /dev/vhost-vdpa-N; so QEMU and the guest check the whole path.
. "$(dirname "$0")/lib.sh"
require_root
build_guest

MAC=52:54:00:0c:00:01
start_vdpad B --device "net:n0,mac=$MAC,queues=2"
start_vdpad A --device "kernel:hw0,path=$VDPAD_DIR_B/n0"
NODE=$VDPAD_DIR_A/hw0

STEPS="vdpatest=--expect-mac=$MAC,--count=2000,--threads=2,--size=60-1500"
STEPS+=" vdpatest=--set-mac=52:54:00:0c:00:02,--count=500"
start_qemu g0 256 2 "$STEPS" \
  -netdev "vhost-vdpa,vhostdev=$NODE,id=n0" -device virtio-net-pci,netdev=n0,mq=on,vectors=6
wait_console g0 180 'GUEST-DONE'
wait_exit "$QEMU_PID_g0" 30 || die "guest did not power off"

r1=$(grep -a '^NETTEST ' "$E2E_WORK/g0.console" | sed -n 1p | tr -d '\r')
r2=$(grep -a '^NETTEST ' "$E2E_WORK/g0.console" | sed -n 2p | tr -d '\r')
[ "$(field "$r1" received)" = 2000 ] && [ "$(field "$r1" lost)" = 0 ] && [ "$(field "$r1" dup)" = 0 ] &&
  [ "$(field "$r1" corrupt)" = 0 ] || die "chained traffic: $r1"
ok "guest MAC $MAC came from B's config space through A; 2000 frames on 2 pairs came back exactly once"
[ "$(field "$r2" received)" = 500 ] && [ "$(field "$r2" lost)" = 0 ] || die "after MAC change: $r2"
ok "the guest's MAC_ADDR_SET went through A's passthrough control queue to B's device"
grep -a 'GUEST-DONE' "$E2E_WORK/g0.console" | grep -q 'rc=0' || die "guest reported failure"
grep -q "n0: opened by pid $VDPAD_PID_A" "$VDPAD_DIR_B/../vdpad.log" ||
  die "B's node was not opened by vdpad A (pid $VDPAD_PID_A)"
ok "B's node was used by vdpad A (pid $VDPAD_PID_A), not by QEMU"

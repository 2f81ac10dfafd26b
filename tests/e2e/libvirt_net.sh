#!/bin/bash
# libvirt 9.0 (Debian's) with <interface type='vdpa'> on a vdpad node backed by the
# simulated NIC: libvirtd opens the node itself and hands the fd to QEMU 7.2 (TCG) through
# an fdset; the guest moves frames through the device's loopback on two queue pairs.
#
# libvirtd runs privately (lib.sh start_libvirtd): its own mount namespace with private
# /etc, /run, /var/lib, /var/cache and /var/log libvirt directories, no systemd, QEMU as
# root; a system libvirtd, if any, is not touched. vdpad starts first so that its FUSE
# mount is copied into that namespace.
#
# The interface needs <model type='virtio'/> spelled out: libvirt 9.0 fills in virtio
# when it is missing, but then silently drops <driver queues='2'/> (QEMU gets one queue
# pair and no mq=on); any other model is refused ("invalid model for interface of type
# 'vdpa'"). <memtune><hard_limit> keeps libvirt from raising RLIMIT_MEMLOCK, which fails
# without CAP_SYS_RESOURCE (DESIGN.md §5).
#
# The MAC: the domain XML names a MAC ($MAC_XML) different from the device's ($MAC_DEV).
# QEMU writes the XML's MAC into the device's config space at realize (SET_CONFIG), but
# the device ignores config writes, as real vDPA hardware may, and QEMU 7.2 then reports
# the MAC it reads back from the device. So the guest's eth0 has the DEVICE's MAC, frames
# to the XML's MAC are filtered out by the device, and libvirt (dumpxml, domiflist) still
# shows the XML's MAC. The MAC that counts is the one the vDPA device is created with.
#
# The negative path: a domain without shared memfd memoryBacking (anonymous guest RAM).
# Neither libvirt nor QEMU checks this: `virsh start` succeeds and the guest boots. When the
# guest's virtio-net driver starts the device, vdpad refuses the IOTLB update of guest RAM
# (EFAULT) with a warning that names the XML to add, and then DRIVER_OK (EIO). QEMU logs
# "vhost vdpa map fail!" and "unable to start vhost net: 5: falling back on userspace
# virtio"; the domain keeps running, and its eth0 comes up with the device's MAC (config
# space needs no guest memory) but carries nothing: every frame is lost.
. "$(dirname "$0")/lib.sh"
require_root
build_guest

MAC_DEV=52:54:00:aa:00:01
MAC_XML=52:54:00:12:34:56
# debug: the log then shows QEMU's config write that the device ignores
start_vdpad v0 --log-level debug --device "net:n0,mac=$MAC_DEV,queues=2"
NODE=$VDPAD_DIR_v0/n0
VLOG=$VDPAD_DIR_v0/../vdpad.log
[ -f "$NODE" ] || die "node $NODE missing"
ok "vdpad serves $NODE"

start_libvirtd lv
LVDIR=$LIBVIRTD_DIR_lv
nsenter -t "$LIBVIRTD_NS_lv" -m test -f "$NODE" || die "$NODE is not visible in libvirtd's mount namespace"
nsenter -t "$LIBVIRTD_NS_lv" -m test -S "$LVDIR/run/libvirt-sock" -a -S /run/libvirt/libvirt-sock ||
  die "libvirtd's socket is not in its private /run/libvirt"
ok "private libvirtd (pid $LIBVIRTD_PID_lv) in its own mount namespace sees the node"

# domain_xml NAME SHARED_RAM(yes|no) VCPUS CMDLINE
domain_xml() {
  local name=$1 shared=$2 vcpus=$3 cmdline=$4 membacking=
  [ "$shared" = yes ] &&
    membacking="<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
  cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>256</memory>
  $membacking
  <memtune><hard_limit unit='KiB'>8192</hard_limit></memtune>
  <vcpu placement='static'>$vcpus</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>$GUEST_DIR/bzImage</kernel>
    <initrd>$GUEST_DIR/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 $cmdline</cmdline>
  </os>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <interface type='vdpa'>
      <mac address='$MAC_XML'/>
      <source dev='$NODE'/>
      <model type='virtio'/>
      <driver queues='2'/>
    </interface>
    <serial type='file'>
      <source path='$E2E_WORK/$name.console'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# vdpad's log after line MARK: vlog_has MARK PATTERN, vlog_first MARK PATTERN (grep BRE).
# (No early-exiting reader such as grep -q in these pipes: with pipefail, tail's SIGPIPE
# would make them fail.)
vlog_has() { tail -n +"$(($1 + 1))" "$VLOG" | grep -c -- "$2" >/dev/null; }
vlog_first() { tail -n +"$(($1 + 1))" "$VLOG" | grep -- "$2" | sed -n 1p; }

# node_closed_and_free MARK WHO — vdpad logged the session's end after MARK; the node opens again
node_closed_and_free() {
  local mark=$1 who=$2
  wait_for 10 "session closed" vlog_has "$mark" 'n0: closed' ||
    die "vdpad did not log n0 closed after $who"
  vlog_has "$mark" 'n0: closed.*device reset' || die "no device reset logged"
  ok "$who closed the node: vdpad ended the session and reset the device"
  exec 3<>"$NODE" || die "$NODE cannot be opened again after $who"
  exec 3>&-
  ok "the node opens again (nobody holds it)"
}

# ------------------------------------------------------------------ the guest on shared RAM
STEPS="vdpatest=--expect-mac=$MAC_DEV,--count=3000,--threads=2,--size=60-1500"
STEPS+=" vdpatest=--expect-none,--dst=$MAC_XML,--count=100,--timeout-ms=500"
domain_xml g0 yes 2 "vdpamode=stay $STEPS" >"$E2E_WORK/g0.xml"
out=$(vsh lv define "$E2E_WORK/g0.xml" 2>&1) || die "virsh define failed: $out"
ok "virsh define accepts <interface type='vdpa'> on the node"

mark=$(wc -l <"$VLOG")
t0=$(date +%s%N)
start_domain lv g0
ok "virsh start: QEMU pid $QEMU_PID_g0 ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"

opener=$(vlog_first "$mark" 'n0: opened by pid' | sed -n 's/.*n0: opened by pid \([0-9]*\).*/\1/p')
[ -n "$opener" ] || die "vdpad did not log the node opened"
[ -d "/proc/$LIBVIRTD_PID_lv/task/$opener" ] ||
  die "the node was opened by pid $opener, not by libvirtd (pid $LIBVIRTD_PID_lv) or one of its threads"
cmdline=$(tr '\0' ' ' <"/proc/$QEMU_PID_g0/cmdline")
grep -q 'opaque=net0-vdpa' <<<"$cmdline" && grep -q '"vhostdev":"/dev/fdset/' <<<"$cmdline" ||
  die "QEMU did not get the node through an fdset: $cmdline"
# (twice: the fdset keeps the fd passed in, vhost-vdpa uses a dup of it)
[ "$(for f in /proc/"$QEMU_PID_g0"/fd/*; do readlink "$f"; done | grep -c -x -- "$NODE")" -ge 1 ] ||
  die "QEMU does not hold the node open: $(ls -l /proc/"$QEMU_PID_g0"/fd)"
grep -q '"queues":2' <<<"$cmdline" && grep -q '"mq":true' <<<"$cmdline" ||
  die "QEMU's netdev/device lack 2 queue pairs: $cmdline"
ok "libvirtd (thread $opener) opened the node; QEMU holds that fd, passed as -add-fd ... -netdev vhost-vdpa,vhostdev=/dev/fdset/N,queues=2"

wait_console g0 90 'GUEST-NET-UP'
log "g0: eth0 up $(( ($(date +%s%N) - t0) / 1000000 )) ms after virsh start"
up=$(console_line g0 'GUEST-NET-UP')
[ "$(field "$up" mac)" = "$MAC_DEV" ] ||
  die "guest eth0 MAC is $(field "$up" mac); the device's is $MAC_DEV, the XML's $MAC_XML"
vlog_has "$mark" 'n0: ignored config write of 6 bytes at 0' ||
  die "vdpad did not see QEMU write the MAC into config space"
ok "guest eth0 has the device's MAC $MAC_DEV, not the XML's $MAC_XML (QEMU's SET_CONFIG of it was ignored)"

wait_console g0 120 'GUEST-DONE'
r1=$(grep -a 'NETTEST ' "$E2E_WORK/g0.console" | sed -n 1p | tr -d '\r')
r2=$(grep -a 'NETTEST ' "$E2E_WORK/g0.console" | sed -n 2p | tr -d '\r')
[ -n "$r2" ] || die "the guest did not run both steps"
for k in lost dup corrupt; do
  [ "$(field "$r1" $k)" = 0 ] || die "step 1: $k=$(field "$r1" $k): $r1"
done
[ "$(field "$r1" received)" = 3000 ] || die "step 1: received $(field "$r1" received) of 3000: $r1"
ok "3000 frames (60-1500 B) from 2 threads came back exactly once, intact"
q=$(grep -a 'NETTEST-QUEUES' "$E2E_WORK/g0.console" | sed -n 1p | tr -d '\r')
tx0=$(sed -n 's/.*tx=q0:\([0-9]*\).*/\1/p' <<<"$q"); tx1=$(sed -n 's/.*tx=q0:[0-9]*,q1:\([0-9]*\).*/\1/p' <<<"$q")
[ "${tx0:-0}" -gt 0 ] && [ "${tx1:-0}" -gt 0 ] || die "traffic did not use both queue pairs: $q"
ok "both queue pairs carried traffic ($q)"
[ "$(field "$r2" received)" = 0 ] && [ "$(field "$r2" result)" = PASS ] || die "step 2: $r2"
ok "frames to the XML's MAC $MAC_XML are filtered by the device"
grep -a 'GUEST-DONE' "$E2E_WORK/g0.console" | grep -q 'rc=0' || die "guest reported failure: $(console_line g0 GUEST-DONE)"

# libvirt's view of the running domain
[ "$(vsh lv domstate g0)" = running ] || die "g0 is $(vsh lv domstate g0), not running"
live=$(vsh lv dumpxml g0)
iface=$(sed -n "/<interface type='vdpa'>/,/<\/interface>/p" <<<"$live")
grep -q "<source dev='$NODE'/>" <<<"$iface" && grep -q "<mac address='$MAC_XML'/>" <<<"$iface" &&
  grep -q "<alias name='net0'/>" <<<"$iface" && grep -q "<driver queues='2'/>" <<<"$iface" ||
  die "live dumpxml lacks the vdpa interface: $live"
ok "virsh dumpxml: <interface type='vdpa'> with source $NODE, mac $MAC_XML, 2 queues, alias net0"
iflist=$(vsh lv domiflist g0)
awk -v node="$NODE" -v mac="$MAC_XML" '$1 == "-" && $2 == "vdpa" && $3 == node && $4 == "virtio" && $5 == mac {f=1} END {exit !f}' <<<"$iflist" ||
  die "domiflist: $iflist"
ok "virsh domiflist: $(tr -s ' ' <<<"$iflist" | sed 's/^ //')"

mark=$(wc -l <"$VLOG")
out=$(vsh lv destroy g0 2>&1) || die "virsh destroy g0: $out"
wait_for 10 "QEMU exit" proc_gone "$QEMU_PID_g0" || die "QEMU $QEMU_PID_g0 still runs after virsh destroy"
[ "$(vsh lv domstate g0 --reason)" = "shut off (destroyed)" ] || die "g0: $(vsh lv domstate g0 --reason)"
node_closed_and_free "$mark" "virsh destroy"
out=$(vsh lv undefine g0 2>&1) || die "virsh undefine g0: $out"
[ -z "$(vsh lv list --all --name)" ] || die "domains left after undefine: $(vsh lv list --all --name)"
ok "virsh undefine"

# ------------------------------------------------------------------ anonymous guest RAM
domain_xml g1 no 2 "vdpamode=stay vdpatest=--count=10,--timeout-ms=300" >"$E2E_WORK/g1.xml"
out=$(vsh lv define "$E2E_WORK/g1.xml" 2>&1) || die "virsh define g1 failed: $out"
mark=$(wc -l <"$VLOG")
t0=$(date +%s%N)
start_domain lv g1
ok "without memoryBacking libvirt starts the domain anyway (QEMU pid $QEMU_PID_g1)"
wait_console g1 90 'NETTEST '
warn=$(vlog_first "$mark" 'warning: n0: IOTLB update iova 0x100000 ') && [ -n "$warn" ] ||
  die "vdpad did not warn about the IOTLB update of guest RAM at 1 MiB"
grep -qF "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>" <<<"$warn" ||
  die "vdpad's warning does not name the XML to add: $warn"
ok "vdpad: ${warn#*: warning: }"
vlog_has "$mark" 'n0: DRIVER_OK refused: guest RAM is not reachable.*memoryBacking' ||
  die "vdpad did not refuse DRIVER_OK"
ok "vdpad refused DRIVER_OK with the same hint"
QLOG=$LVDIR/log/qemu/g1.log
grep -q 'vhost vdpa map fail!' "$QLOG" || die "QEMU did not report the failed IOTLB write"
grep -q 'unable to start vhost net: 5: falling back on userspace virtio' "$QLOG" ||
  die "QEMU did not report the failed vhost start"
ok "QEMU: $(grep -m1 -o 'vhost vdpa map fail!' "$QLOG") / $(grep -m1 -o 'unable to start vhost net.*' "$QLOG")"
up=$(console_line g1 'GUEST-NET-UP')
r=$(console_line g1 'NETTEST ')
[ "$(field "$up" mac)" = "$MAC_DEV" ] || die "g1: $up"
[ "$(field "$r" received)" = 0 ] && [ "$(field "$r" lost)" = 10 ] && [ "$(field "$r" result)" = FAIL ] ||
  die "g1: frames moved without shared guest RAM: $r"
log "g1: the guest's step ended $(( ($(date +%s%N) - t0) / 1000000 )) ms after virsh start"
ok "the guest's eth0 comes up (MAC $MAC_DEV from config space) but carries nothing: $(field "$r" lost) of 10 frames lost"
[ "$(vsh lv domstate g1)" = running ] || die "g1 is $(vsh lv domstate g1 --reason)"
ok "libvirt still reports g1 running"

mark=$(wc -l <"$VLOG")
out=$(vsh lv destroy g1 2>&1) || die "virsh destroy g1: $out"
wait_for 10 "QEMU exit" proc_gone "$QEMU_PID_g1" || die "QEMU $QEMU_PID_g1 still runs after virsh destroy"
node_closed_and_free "$mark" "virsh destroy of g1"
out=$(vsh lv undefine g1 2>&1) || die "virsh undefine g1: $out"
ok "virsh undefine g1"

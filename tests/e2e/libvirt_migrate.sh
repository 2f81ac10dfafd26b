#!/bin/bash
# Live migration of a guest on a vdpad node between two libvirt 9.0 hosts, with traffic
# running, and the failure path.
#
# Two "hosts" on this machine, as in shared/recipes/two_host_migrate.sh: each is a holder
# process with its own mount, UTS and network namespaces (hostnames hosta/hostb, a veth pair
# 10.77.0.1 <-> 10.77.0.2), a tmpfs over /run, and private /etc/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt and /etc/hosts. Inside each run its own dbus-daemon
# (on a socket in the test's directory), its own vdpad and its own libvirtd. Each vdpad mounts
# its nodes at /run/vdpad/dev in its host's mount namespace, so the node has the SAME path on
# both hosts (/run/vdpad/dev/n0), as /dev/vhost-vdpa-N would; libvirtd and QEMU of that host
# see that host's vdpad.
#
# Each vdpad: a simulated NIC n0 (same default MAC on both), the migration channel on
# 10.77.0.X:16516 with certificates from one test CA (server certificates with the host name
# and IP address), and --libvirt-uri, so it writes its metadata into the domain that owns n0.
# A's vdpad advertises hosta:16516 (--migration-address, resolved through the host's
# /etc/hosts); B's advertises its --migration-listen, 10.77.0.2:16516. On both hosts
# vdpad-libvirt-hook is installed as /etc/libvirt/hooks/qemu.d/50-vdpad (a wrapper that names
# the host's bus and logs the calls).
#
# The guest (tests/guest, 2 vCPUs, 2 queue pairs): sets a new MAC ($MAC_NEW, on the control
# queue), checks frames to it come back, then sends continuously on two flows. Then:
#   1. virsh migrate --live --p2p A -> B: the hook on B prepares B's n0 from the metadata A's
#      vdpad wrote; B's vdpad fetches the state from A and restores it (the MAC among it), and
#      writes its own metadata; frames to $MAC_NEW keep coming back on B.
#   2. the same B -> A.
#   3. failure path: B's vdpad restarts with certificates from another CA; A -> B: the hook
#      on B fails (the source does not authenticate), libvirt fails the migration before QEMU
#      starts on B, and the guest keeps running on A.
#   4. "stop" on the console: the program's summary must show 0 lost, dup and corrupt over the
#      whole run, and the guest must not have rebooted.
# A guest panic (QEMU 7.2 TCG's lost write, mig_lib.sh) reruns the test once. libvirt starts
# QEMU through a wrapper that asks for single-threaded TCG, as lib.sh's start_qemu does:
# libvirt 9.0 has no setting for it.
. "$(dirname "$0")/mig_lib.sh"
mig_attempts "$@"
. "$(dirname "$0")/lib.sh"
require_root
for c in libvirtd virsh unshare nsenter ip certtool dbus-daemon gdbus python3; do
  command -v "$c" >/dev/null || die "$c is not installed"
done
HOOK=${HOOK:-$top_builddir/src/libvirt_driver/vdpad-libvirt-hook}
[ -x "$HOOK" ] || die "vdpad-libvirt-hook not built at $HOOK"
build_guest
ensure_libvirt_users

DOM=g0
MAC_DEV=52:54:00:aa:00:01
MAC_NEW=52:54:00:bb:00:02
PORT=16516
NODE=/run/vdpad/dev/n0
declare -A IP=([A]=10.77.0.1 [B]=10.77.0.2) HN=([A]=hosta [B]=hostb)
declare -A HUUID=([A]=11111111-aaaa-4aaa-8aaa-00000000000a [B]=22222222-bbbb-4bbb-8bbb-00000000000b)
declare -A HOLDER=() LVPID=() VPID=() BUSPID=() BUS=()
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ------------------------------------------------------------------ certificates
make_pki() {
  local p=$E2E_WORK/pki
  mkdir -p "$p" && cd "$p" || die "no pki directory"
  certtool --generate-privkey --outfile ca1-key.pem 2>/dev/null
  certtool --generate-privkey --outfile ca2-key.pem 2>/dev/null
  for ca in ca1 ca2; do
    printf 'cn = vdpad e2e %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$ca" >"$ca.info"
    certtool --generate-self-signed --load-privkey "$ca-key.pem" --template "$ca.info" \
      --outfile "$ca.pem" >/dev/null 2>&1 || die "certtool: CA $ca"
  done
  # cert NAME CA TEMPLATE
  cert() {
    certtool --generate-privkey --outfile "$1-key.pem" 2>/dev/null
    printf '%b' "$3" >"$1.info"
    certtool --generate-certificate --load-privkey "$1-key.pem" --load-ca-certificate "$2.pem" \
      --load-ca-privkey "$2-key.pem" --template "$1.info" --outfile "$1.pem" >/dev/null 2>&1 ||
      die "certtool: certificate $1"
  }
  # layout DIR CA SERVER CLIENT
  layout() {
    mkdir -p "$1"
    cp "$2.pem" "$1/cacert.pem"
    cp "$3.pem" "$1/servercert.pem"; cp "$3-key.pem" "$1/serverkey.pem"
    cp "$4.pem" "$1/clientcert.pem"; cp "$4-key.pem" "$1/clientkey.pem"
  }
  local h
  for h in A B; do
    cert "server-$h" ca1 "organization = vdpad e2e\ncn = ${HN[$h]}\ndns_name = ${HN[$h]}\nip_address = ${IP[$h]}\ntls_www_server\nsigning_key\nexpiration_days = 2\n"
    cert "client-$h" ca1 "organization = vdpad e2e\ncn = ${HN[$h]}\ntls_www_client\nsigning_key\nexpiration_days = 2\n"
    layout "$p/$h" ca1 "server-$h" "client-$h"
  done
  cert server-B2 ca2 "organization = other\ncn = hostb\ndns_name = hostb\nip_address = ${IP[B]}\ntls_www_server\nsigning_key\nexpiration_days = 2\n"
  cert client-B2 ca2 "organization = other\ncn = hostb\ntls_www_client\nsigning_key\nexpiration_days = 2\n"
  layout "$p/B-otherca" ca2 server-B2 client-B2
  cd - >/dev/null
}
t0=$(date +%s%N)
make_pki
ok "certificates for hosta and hostb (CA 1, host names and IP addresses) and for hostb from CA 2 ($(ms_since "$t0") ms)"

# ------------------------------------------------------------------ the two hosts
# in_host H CMD...: runs CMD in host H's namespaces
in_host() { local h=$1; shift; nsenter -t "${HOLDER[$h]}" -m -u -n "$@"; }
uri() { echo "qemu+unix:///system?socket=$E2E_WORK/$1/run/libvirt-sock"; }
vsh() { local h=$1; shift; timeout 60 virsh -q -c "$(uri "$h")" "$@"; }

mkhost() {
  local h=$1 d=$E2E_WORK/$1
  mkdir -p "$d"/{etc/hooks/qemu.d,run,lib/qemu,cache/qemu/capabilities,log/qemu}
  write_libvirt_conf "$d/etc" "host_uuid = \"${HUUID[$h]}\""
  printf '127.0.0.1 localhost\n%s hosta\n%s hostb\n' "${IP[A]}" "${IP[B]}" >"$d/hosts"
  unshare --mount --uts --net --propagation private sleep infinity &
  HOLDER[$h]=$!
  on_exit "stop_host $h"
  wait_for 5 "namespaces of $h" _in_own_ns "${HOLDER[$h]}" || die "unshare did not start for $h"
  in_host "$h" sh -ec "
    mount -t tmpfs -o mode=0755 e2e-run /run
    mkdir -p /run/libvirt /run/vdpad
    mount --bind '$d/run' /run/libvirt
    mount --bind '$d/etc' /etc/libvirt
    mount --bind '$d/lib' /var/lib/libvirt
    mount --bind '$d/cache' /var/cache/libvirt
    mount --bind '$d/log' /var/log/libvirt
    mount --bind '$d/hosts' /etc/hosts
    hostname '${HN[$h]}'
    ip link set lo up" || die "namespaces of host $h: setup failed"
  show_on_fail "$d/vdpad.log" "$d/log/libvirtd.log" "$d/log/vdpad-hook.log"
}
_in_own_ns() {
  [ "$(readlink "/proc/$1/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] &&
    [ "$(readlink "/proc/$1/ns/net")" != "$(readlink /proc/self/ns/net)" ]
}

stop_host() {
  local h=$1 d p mntns
  [ -n "${HOLDER[$h]:-}" ] || return 0
  mntns=$(readlink "/proc/${HOLDER[$h]}/ns/mnt")
  if [ -n "${LVPID[$h]:-}" ] && kill -0 "${LVPID[$h]}" 2>/dev/null; then
    for d in $(vsh "$h" list --all --name 2>/dev/null); do
      vsh "$h" destroy "$d"; vsh "$h" undefine "$d"
    done
  fi
  for p in $(pgrep -x qemu-system-x86 || true); do
    [ "$(readlink "/proc/$p/ns/mnt")" = "$mntns" ] && kill -KILL "$p"
  done
  if [ -n "${LVPID[$h]:-}" ]; then
    kill -TERM "${LVPID[$h]}"; wait_exit "${LVPID[$h]}" 5 || { kill -KILL "${LVPID[$h]}"; wait "${LVPID[$h]}"; }
  fi
  stop_host_vdpad "$h"
  if [ -n "${BUSPID[$h]:-}" ]; then kill -TERM "${BUSPID[$h]}"; wait "${BUSPID[$h]}"; fi
  kill -TERM "${HOLDER[$h]}"; wait "${HOLDER[$h]}"
  HOLDER[$h]=
}

start_bus() {
  local h=$1 d=$E2E_WORK/$1
  cat >"$d/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$d/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
  dbus-daemon --config-file="$d/bus.conf" --nofork --nopidfile >"$d/bus.log" 2>&1 &
  BUSPID[$h]=$!
  BUS[$h]=unix:path=$d/bus.sock
  wait_for 5 "bus of $h" test -S "$d/bus.sock" || die "dbus-daemon of host $h did not start"
}

# start_host_vdpad H PKI-DIR ARGS...
start_host_vdpad() {
  local h=$1 pki=$2 d=$E2E_WORK/$1; shift 2
  touch "$d/vdpad.log"
  VMARK[$h]=$(wc -l <"$d/vdpad.log")
  # nsenter itself in the background (not the function): $! is then vdpad's pid (exec'd)
  nsenter -t "${HOLDER[$h]}" -m -u -n env DBUS_SESSION_BUS_ADDRESS="${BUS[$h]}" "$VDPAD" --foreground --bus session \
    --log-level "${VDPAD_LOG_LEVEL:-info}" --dev-dir /run/vdpad/dev --device "net:n0,mac=$MAC_DEV,queues=2" \
    --migration-listen "${IP[$h]}:$PORT" --pki-dir "$pki" --libvirt-uri qemu:///system \
    "$@" >>"$d/vdpad.log" 2>&1 &
  VPID[$h]=$!
  wait_for 10 "vdpad $h" vlog_has "$h" 'serving' || die "vdpad on $h did not start: $(tail -3 "$d/vdpad.log")"
  in_host "$h" test -f "$NODE" || die "$NODE is not in host $h's namespace"
}
declare -A VMARK=()
stop_host_vdpad() {
  local h=$1
  [ -n "${VPID[$h]:-}" ] || return 0
  kill -TERM "${VPID[$h]}"
  wait_exit "${VPID[$h]}" 5 || { kill -KILL "${VPID[$h]}"; wait "${VPID[$h]}"; }
  VPID[$h]=
}
# vdpad's log since its last start: vlog_has H PATTERN, vlog H
vlog() { tail -n +"$((${VMARK[$1]} + 1))" "$E2E_WORK/$1/vdpad.log"; }
vlog_has() { vlog "$1" | grep -c -- "$2" >/dev/null; }

install_hook() {
  local h=$1 d=$E2E_WORK/$1
  cat >"$d/etc/hooks/qemu.d/50-vdpad" <<EOF
#!/bin/bash
# vdpad-libvirt-hook on this host's bus; every call and its messages logged
err=\$(mktemp)
"$HOOK" --bus "${BUS[$h]}" "\$@" 2>"\$err"
rc=\$?
cat "\$err" >&2
{ echo "\$(date +%T.%N) \$* rc=\$rc"; cat "\$err"; } >>/var/log/libvirt/vdpad-hook.log
rm -f "\$err"
exit \$rc
EOF
  chmod +x "$d/etc/hooks/qemu.d/50-vdpad"
  touch "$d/log/vdpad-hook.log"
}

start_host_libvirtd() {
  local h=$1 d=$E2E_WORK/$1
  [ -d "$LIBVIRT_CAPS_CACHE" ] && cp -p "$LIBVIRT_CAPS_CACHE"/*.xml "$d/cache/qemu/capabilities/" 2>/dev/null
  nsenter -t "${HOLDER[$h]}" -m -u -n libvirtd -p /run/libvirt/libvirtd.pid >"$d/libvirtd.out" 2>&1 &
  LVPID[$h]=$!
}
wait_host_libvirtd() {
  local h=$1 d=$E2E_WORK/$1 deadline=$(( $(date +%s) + 60 ))
  until [ -S "$d/run/libvirt-sock" ] && vsh "$h" version >/dev/null 2>&1; do
    kill -0 "${LVPID[$h]}" 2>/dev/null || die "libvirtd $h exited: $(tail -3 "$d/libvirtd.out")"
    [ "$(date +%s)" -lt "$deadline" ] || die "libvirtd $h did not answer within 60 s"
    sleep 0.1
  done
}

t0=$(date +%s%N)
mkhost A; mkhost B
ip link add name vethA netns "${HOLDER[A]}" type veth peer name vethB netns "${HOLDER[B]}" ||
  die "cannot create the veth pair"
for h in A B; do
  in_host "$h" sh -ec "ip addr add ${IP[$h]}/24 dev veth$h; ip link set veth$h up"
done
for h in A B; do start_bus "$h"; install_hook "$h"; done
start_host_vdpad A "$E2E_WORK/pki/A" --migration-address "hosta:$PORT"
start_host_vdpad B "$E2E_WORK/pki/B"
vlog_has A "source hosta:$PORT" && vlog_has B "source ${IP[B]}:$PORT" ||
  die "the vdpads do not advertise hosta:$PORT and ${IP[B]}:$PORT"
for h in A B; do start_host_libvirtd "$h"; done
for h in A B; do wait_host_libvirtd "$h"; done
_save_caps_cache "$E2E_WORK/A/cache/qemu/capabilities"
[ "$(vsh A hostname)" = hosta ] && [ "$(vsh B hostname)" = hostb ] || die "host names: $(vsh A hostname) $(vsh B hostname)"
ok "two hosts up in $(ms_since "$t0") ms: hosta/hostb, veth ${IP[A]}<->${IP[B]}, each with its own bus, vdpad ($NODE) and libvirtd"

# ------------------------------------------------------------------ the guest on A
STEPS="vdpatest=--set-mac=$MAC_NEW,--count=300,--threads=2"
STEPS+=" vdpatest=--continuous,--threads=2,--rate=400,--size=60-1500,--max-seconds=400"
cat >"$E2E_WORK/qemu-system-x86_64" <<'EOF'
#!/bin/bash
args=()
for a in "$@"; do [ "${args[-1]:-}" = -accel ] && [ "$a" = tcg ] && a=tcg,thread=single; args+=("$a"); done
exec /usr/bin/qemu-system-x86_64 "${args[@]}"
EOF
chmod 755 "$E2E_WORK/qemu-system-x86_64"
cat >"$E2E_WORK/$DOM.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>256</memory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <memtune><hard_limit unit='KiB'>8192</hard_limit></memtune>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>$GUEST_DIR/bzImage</kernel>
    <initrd>$GUEST_DIR/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 vdpamode=stay $STEPS</cmdline>
  </os>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$E2E_WORK/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <interface type='vdpa'>
      <source dev='$NODE'/>
      <model type='virtio'/>
      <driver queues='2'/>
    </interface>
    <!-- in each host's private /var/lib/libvirt and /var/log/libvirt -->
    <serial type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/$DOM.console.sock'/>
      <log file='/var/log/libvirt/qemu/$DOM.console' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
console() { echo "$E2E_WORK/$1/log/qemu/$DOM.console"; }
console_lines() { { wc -l <"$(console "$1")"; } 2>/dev/null || echo 0; }
# lines of host H's console after line MARK
console_since() { tail -n +"$(($2 + 1))" "$(console "$1")" 2>/dev/null | tr -d '\r'; }
progress_t() { console_since "$1" "$2" | grep -a '^NETTEST-PROGRESS' | tail -1 | sed -n 's/.* t=\([0-9]*\).*/\1/p'; }
# progress_past H MARK T: a progress line after MARK says t >= T
progress_past() { local t; t=$(progress_t "$1" "$2"); [ -n "$t" ] && [ "$t" -ge "$3" ]; }
send_console() {  # H TEXT
  timeout 10 python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n"); s.close()' \
    "$E2E_WORK/$1/lib/qemu/$DOM.console.sock" "$2" || die "cannot write to the console on $1"
}
show_on_fail "$(console A)" "$(console B)" "$E2E_WORK/A/log/qemu/$DOM.log" "$E2E_WORK/B/log/qemu/$DOM.log"
# waits for a console line matching PATTERN on host H after line MARK
wait_console_since() {  # H MARK SECONDS PATTERN
  local deadline=$(( $(date +%s) + $3 ))
  until console_since "$1" "$2" | grep -aqE "$4"; do
    grep -aq 'Kernel panic' "$(console "$1")" 2>/dev/null && on_guest_panic "$1" "$(console "$1")"
    [ "$(date +%s)" -lt "$deadline" ] || die "no '$4' on $1's console within $3 s"
    [ -n "$(vsh "$1" list --name | grep -x "$DOM")" ] || die "$DOM is not running on $1 (waiting for '$4')"
    sleep 0.2
  done
}

out=$(vsh A define "$E2E_WORK/$DOM.xml" 2>&1) || die "virsh define: $out"
t0=$(date +%s%N)
out=$(vsh A start "$DOM" 2>&1) || die "virsh start: $out"
QPID=$(cat "$E2E_WORK/A/run/qemu/$DOM.pid")
cmdline=$(tr '\0' ' ' <"/proc/$QPID/cmdline")
name_arg=$(grep -o -- "-name [^ ]*" <<<"$cmdline")
uuid_arg=$(grep -o -- "-uuid [^ ]*" <<<"$cmdline")
[ "$name_arg" = "-name guest=$DOM,debug-threads=on" ] && [ -n "$uuid_arg" ] ||
  die "libvirt's QEMU command line names the domain otherwise: $name_arg / $uuid_arg"
grep -q -- "-accel tcg,thread=single" <<<"$cmdline" || die "QEMU runs without single-threaded TCG: $cmdline"
ok "libvirt 9.0 starts QEMU with '$name_arg', '$uuid_arg' and single-threaded TCG"

wait_console_since A 0 120 'GUEST-STEP-RC i=1 '
r1=$(console_since A 0 | grep -a '^NETTEST ' | head -1)
[ "$(field "$r1" result)" = PASS ] && [ "$(field "$r1" mac)" = "$MAC_NEW" ] ||
  die "the guest's MAC step: $r1"
ok "guest up on A in $(ms_since "$t0") ms; it set its MAC to $MAC_NEW and 300 frames to it came back"
wait_console_since A 0 30 '^NETTEST-PROGRESS t=3'
ok "continuous traffic on A: $(console_since A 0 | grep -a '^NETTEST-PROGRESS' | tail -1)"

# metadata_of H: vdpad's device entry in the live domain XML on H
metadata_of() { vsh "$1" dumpxml "$DOM" | grep -o "<vdpad:device [^>]*>" || true; }
attr() { sed -n "s/.* $2=\"\([^\"]*\)\".*/\1/p" <<<"$1"; }
metadata_is() { attr "$(metadata_of "$1")" source | grep -qx -- "$2"; }
wait_for 30 "A's metadata" metadata_is A "hosta:$PORT" || die "no vdpad metadata in $DOM on A: $(metadata_of A)"
mdA=$(metadata_of A)
[ "$(attr "$mdA" node)" = "$NODE" ] && [ "$(attr "$mdA" name)" = n0 ] &&
  [ "$(attr "$mdA" source)" = "hosta:$PORT" ] && [ -n "$(attr "$mdA" token)" ] ||
  die "A's metadata: $mdA"
vlog_has A "n0: domain $DOM: migration metadata set" || die "vdpad A did not log the metadata"
# migration_token H: vdpad H's MigrationToken of n0 (D-Bus)
migration_token() {
  gdbus call --address "${BUS[$1]}" -d org.vdpad1 -o /org/vdpad1/device/n0 \
    -m org.freedesktop.DBus.Properties.Get org.vdpad1.Device MigrationToken | sed -n "s/^(<'\(.*\)'>,)$/\1/p"
}
[ "$(attr "$mdA" token)" = "$(migration_token A)" ] ||
  die "the token in the metadata is not vdpad A's MigrationToken ($(migration_token A))"
ok "vdpad A wrote into $DOM's live XML (the token is its MigrationToken): $mdA"

# ------------------------------------------------------------------ migrations
# migrate SRC DST: live, peer to peer, the QEMU stream over the veth
migrate() {
  local s=$1 t=$2 t0 el st out
  MARK_T=$(console_lines "$t")
  HOOKMARK=$(wc -l <"$E2E_WORK/$t/log/vdpad-hook.log")
  t0=$(date +%s%N)
  MIG_RC=0
  out=$(timeout 180 virsh -q -c "$(uri "$s")" migrate --live --p2p --persistent --undefinesource \
          "$DOM" "$(uri "$t")" --migrateuri "tcp://${IP[$t]}:49152" 2>&1) || MIG_RC=$?
  MIG_OUT=$out
  MIG_MS=$(ms_since "$t0")
}
check_migrated() {  # SRC DST TOKEN_OF_SOURCE SOURCE_ADDRESS
  local s=$1 t=$2 token=$3 addr=$4 st line
  [ "$MIG_RC" = 0 ] || die "virsh migrate $s -> $t failed ($MIG_RC): $MIG_OUT"
  [ "$(vsh "$t" domstate "$DOM")" = running ] || die "$DOM is not running on $t"
  [ -z "$(vsh "$s" list --all --name)" ] || die "$DOM is still defined on $s"
  st=$(vsh "$t" domjobinfo "$DOM" --completed 2>/dev/null |
       awk -F': *' '/^Time elapsed:/{e=$2} /^Total downtime:/{d=$2} END{print "elapsed " e ", downtime " d}')
  log "migrated $s -> $t in $MIG_MS ms ($st)"
  line=$(tail -n +"$((HOOKMARK + 1))" "$E2E_WORK/$t/log/vdpad-hook.log" | grep " migrate begin - rc=0" | head -1)
  [ -n "$line" ] || die "the hook on $t was not called with 'migrate begin -' (or failed)"
  tail -n +"$((HOOKMARK + 1))" "$E2E_WORK/$t/log/vdpad-hook.log" |
    grep -q "node $NODE prepared to receive n0's state from $addr" || die "the hook did not prepare $NODE from $addr"
  ok "the hook on $t ran as '$DOM migrate begin -' and prepared $NODE from $addr"
  wait_for 20 "restore on $t" vlog_has "$t" "n0: restored the device state" ||
    die "vdpad $t did not restore the device state"
  line=$(vlog "$t" | grep "n0: got n0's state from $addr" | tail -1)
  [ -n "$line" ] || die "vdpad $t did not log the state from $addr"
  ok "vdpad $t: '${line#*: n0: }'; '$(vlog "$t" | grep 'n0: restored the device state' | tail -1 | sed 's/.*n0: //')'"
  # the guest goes on where it was: no new boot, traffic on, nothing lost so far
  wait_console_since "$t" "$MARK_T" 30 '^NETTEST-PROGRESS'
  local p1 p2
  p1=$(progress_t "$t" "$MARK_T")
  wait_for 20 "progress on $t" progress_past "$t" "$MARK_T" "$((p1 + 3))" ||
    die "traffic does not progress on $t (t=$p1)"
  p2=$(console_since "$t" "$MARK_T" | grep -a '^NETTEST-PROGRESS' | tail -1)
  console_since "$t" "$MARK_T" | grep -aq 'GUEST-UP' && die "the guest rebooted on $t"
  [ "$(field "$p2" lost_so_far)" = 0 ] && [ "$(field "$p2" dup)" = 0 ] && [ "$(field "$p2" corrupt)" = 0 ] ||
    die "frames lost, duplicated or corrupted around the migration: $p2"
  ok "on $t the guest runs on (no boot), frames to $MAC_NEW come back: $p2"
  # the destination's vdpad describes its own session now
  wait_for 45 "metadata of $t" metadata_is "$t" "${MIGADDR[$t]}" ||
    die "vdpad $t did not write its metadata: $(metadata_of "$t")"
  local md; md=$(metadata_of "$t")
  [ "$(attr "$md" token)" != "$token" ] || die "the metadata on $t still has the source's token"
  [ "$(attr "$md" token)" = "$(migration_token "$t")" ] ||
    die "the token on $t is not vdpad $t's MigrationToken ($(migration_token "$t"))"
  ok "vdpad $t wrote its own entry (its MigrationToken): $md"
}
declare -A MIGADDR=([A]="hosta:$PORT" [B]="${IP[B]}:$PORT")

tokA=$(attr "$mdA" token)
migrate A B
check_migrated A B "$tokA" "hosta:$PORT"
tokB=$(attr "$(metadata_of B)" token)

migrate B A
check_migrated B A "$tokB" "${IP[B]}:$PORT"

# ------------------------------------------------------------------ failure path
stop_host_vdpad B
start_host_vdpad B "$E2E_WORK/pki/B-otherca"
ok "vdpad B restarted with certificates from another CA"
MARK_A=$(console_lines A)
migrate A B
[ "$MIG_RC" != 0 ] || die "virsh migrate A -> B succeeded although B's vdpad cannot authenticate A's"
log "virsh migrate failed in $MIG_MS ms: $MIG_OUT"
tail -n +"$((HOOKMARK + 1))" "$E2E_WORK/B/log/vdpad-hook.log" | grep -q " migrate begin - rc=1" ||
  die "the hook on B did not fail"
hookmsg=$(tail -n +"$((HOOKMARK + 1))" "$E2E_WORK/B/log/vdpad-hook.log" | grep 'cannot prepare' | head -1)
[ -n "$hookmsg" ] || die "the hook gave no reason"
ok "the hook on B failed: $hookmsg"
grep -q "Hook script execution failed" <<<"$MIG_OUT" || die "virsh migrate's error is not the hook's: $MIG_OUT"
[ "$(vsh A domstate "$DOM")" = running ] || die "$DOM is not running on A after the failed migration"
[ -z "$(vsh B list --all --name)" ] || die "$DOM was left on B"
for p in $(pgrep -x qemu-system-x86 || true); do
  [ "$(readlink "/proc/$p/ns/mnt")" = "$(readlink "/proc/${HOLDER[B]}/ns/mnt")" ] && die "a QEMU runs on B"
done
wait_console_since A "$MARK_A" 20 '^NETTEST-PROGRESS'
p1=$(progress_t A "$MARK_A")
wait_for 20 "progress on A" progress_past A "$MARK_A" "$((p1 + 2))" || die "traffic stopped on A"
ok "libvirt failed the migration before QEMU started on B; $DOM keeps running on A: $(console_since A "$MARK_A" | grep -a '^NETTEST-PROGRESS' | tail -1)"

# ------------------------------------------------------------------ the end of the run
MARK_A=$(console_lines A)
send_console A stop
wait_console_since A "$MARK_A" 30 'GUEST-STEP-RC i=2 '
final=$(console_since A "$MARK_A" | grep -a '^NETTEST ' | tail -1)
for k in lost dup corrupt; do
  [ "$(field "$final" $k)" = 0 ] || die "$k=$(field "$final" $k) over the whole run: $final"
done
[ "$(field "$final" result)" = PASS ] && [ "$(field "$final" mac)" = "$MAC_NEW" ] || die "final: $final"
[ "$(cat "$(console A)" "$(console B)" | grep -ac 'GUEST-UP')" = 1 ] || die "the guest booted more than once"
ok "over the whole run (A -> B -> A, and the failed attempt): $final"

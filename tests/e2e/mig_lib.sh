# mig_lib.sh — two vdpad "hosts" on one machine for migration tests (sourced after lib.sh;
# a test that calls mig_attempts sources this file first and calls it before lib.sh).
#
# Each host is a network namespace (the two joined by a veth pair, 10.X.Y.1 and .2), with
# its own dbus-daemon (vdpad owns org.vdpad1 once per bus), its own vdpad serving its
# nodes and its migration channel on the host's address, with certificates from a test CA
# in libvirt's file layout. QEMU runs inside the host's namespace, so the migration
# stream and the channel cross the veth link.

# QEMU 7.2's TCG now and then loses a guest write across a migration: the destination
# guest's kernel panics soon after, with a plain QEMU NIC and no vdpad as well (docs/
# migration.md, "Known limits"). A test that sees its guest panic exits with
# E2E_TCG_PANIC; under mig_attempts it then runs once more. Twice in a row fails.
E2E_TCG_PANIC=75

# mig_attempts ARGS... — runs this test (its own script, ARGS) and, when that run ended
# with E2E_TCG_PANIC, once more; exits with the last run's status. Call it before
# sourcing lib.sh.
mig_attempts() {
  [ -n "${E2E_ATTEMPT:-}" ] && return 0
  local rc=0
  E2E_ATTEMPT=1 "$0" "$@" || rc=$?
  if [ "$rc" = "$E2E_TCG_PANIC" ]; then
    echo "[$(basename "$0" .sh)] NOTE: the guest panicked after a migration, QEMU 7.2 TCG's known lost write; running the test once more"
    E2E_ATTEMPT=2 exec "$0" "$@"
  fi
  exit "$rc"
}

# on_guest_panic NAME [CONSOLE_FILE] — a panicking guest on a first attempt ends the test
# with E2E_TCG_PANIC (lib.sh's wait_console calls this)
on_guest_panic() {
  local f=${2:-$E2E_WORK/$1.console}
  echo "[$E2E_NAME] guest $1 panicked: $(grep -aE 'Kernel panic|RIP:' "$f" | tail -1 | tr -d '\r')" >&2
  tail -40 "$f" >&2
  case "${E2E_ATTEMPT:-}" in
    1) exit "$E2E_TCG_PANIC" ;;
    2) die "the guest $1 panicked again" ;;
    *) die "the guest $1 panicked" ;;
  esac
}

MIG_NET=$(( ($$ % 200) + 20 ))          # a subnet per test run: 10.$MIG_NET.77.0/24
MIG_IP_A=10.$MIG_NET.77.1
MIG_IP_B=10.$MIG_NET.77.2
MIG_PORT=16516
MIG_NS_A=vdpad-$$-a
MIG_NS_B=vdpad-$$-b

# mig_pki [DIR] — a CA and, per host, a server and a client certificate (with the host's
# IP) in libvirt's pkipath layout: DIR/a and DIR/b (DIR defaults to $E2E_WORK/pki; another
# DIR makes a second, unrelated CA)
mig_pki() {
  local d=${1:-$E2E_WORK/pki}
  mkdir -p "$d"
  (
    cd "$d"
    certtool --generate-privkey --key-type ecdsa --outfile ca-key.pem >/dev/null 2>&1
    printf 'cn = vdpad e2e CA\nca\ncert_signing_key\nexpiration_days = 7\n' >ca.info
    certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca.pem >/dev/null 2>&1
    for h in a b; do
      local ip; [ $h = a ] && ip=$MIG_IP_A || ip=$MIG_IP_B
      mkdir -p $h
      cp ca.pem $h/cacert.pem
      for role in server client; do
        certtool --generate-privkey --key-type ecdsa --outfile $h/${role}key.pem >/dev/null 2>&1
        if [ $role = server ]; then
          printf 'organization = vdpad e2e\ncn = host%s\ndns_name = host%s\nip_address = %s\ntls_www_server\nsigning_key\nexpiration_days = 7\n' $h $h "$ip" >$h/$role.info
        else
          printf 'organization = vdpad e2e\ncn = host%s client\ntls_www_client\nsigning_key\nexpiration_days = 7\n' $h >$h/$role.info
        fi
        certtool --generate-certificate --load-privkey $h/${role}key.pem \
          --load-ca-certificate ca.pem --load-ca-privkey ca-key.pem \
          --template $h/$role.info --outfile $h/${role}cert.pem >/dev/null 2>&1
      done
    done
  ) || die "certtool failed"
  [ -f "$d/b/clientcert.pem" ] || die "the test PKI is incomplete"
}

# mig_network — the two namespaces and the link between them
mig_network() {
  ip netns add "$MIG_NS_A" && ip netns add "$MIG_NS_B" || die "ip netns add failed"
  on_exit "ip netns del $MIG_NS_A; ip netns del $MIG_NS_B"
  ip link add "va$$" type veth peer name "vb$$" || die "veth failed"
  ip link set "va$$" netns "$MIG_NS_A"
  ip link set "vb$$" netns "$MIG_NS_B"
  ip -n "$MIG_NS_A" addr add "$MIG_IP_A/24" dev "va$$"
  ip -n "$MIG_NS_B" addr add "$MIG_IP_B/24" dev "vb$$"
  for ns in "$MIG_NS_A" "$MIG_NS_B"; do ip -n "$ns" link set lo up; done
  ip -n "$MIG_NS_A" link set "va$$" up
  ip -n "$MIG_NS_B" link set "vb$$" up
  ip -n "$MIG_NS_A" route get "$MIG_IP_B" >/dev/null 2>&1 || die "host a has no route to $MIG_IP_B"
}

# mig_host NAME DEVICE_SPEC... — vdpad NAME on host a or b (MIG_ON=a|b, default NAME),
# with its own bus and its migration channel on the host's address (MIG_LISTEN_PORT,
# default $MIG_PORT) and certificates (MIG_PKI_DIR, default $E2E_WORK/pki/<host>).
# Sets BUS_<NAME> and, through start_vdpad, VDPAD_DIR_<NAME>/VDPAD_PID_<NAME>.
mig_host() {
  local h=$1; shift
  local on=${MIG_ON:-$h} ns ip
  [ "$on" = a ] && { ns=$MIG_NS_A; ip=$MIG_IP_A; } || { ns=$MIG_NS_B; ip=$MIG_IP_B; }
  local out
  out=$(dbus-daemon --session --fork --print-address=1 --print-pid=1) || die "dbus-daemon for host $h"
  local addr pid
  addr=$(sed -n 1p <<<"$out"); pid=$(sed -n 2p <<<"$out")
  on_exit "kill $pid"
  printf -v "BUS_$h" %s "$addr"
  DBUS_SESSION_BUS_ADDRESS=$addr VDPAD_NETNS=$ns start_vdpad "$h" --bus session \
    --migration-listen "$ip:${MIG_LISTEN_PORT:-$MIG_PORT}" \
    --pki-dir "${MIG_PKI_DIR:-$E2E_WORK/pki/$on}" "$@"
}

# mig_monitor_start NAME FILE — a D-Bus client on host NAME's bus: vdpactl monitor --json
# of device n0 into FILE (its stderr in FILE.err), subscribed when this returns; the pid in
# MON_<NAME>
mig_monitor_start() {
  vdpactl_on "$1" monitor --json n0 >"$2" 2>"$2.err" &
  eval "MON_$1=\$!"
  wait_for 10 "$1's monitor" grep -q "monitoring n0" "$2.err" || die "vdpactl monitor on $1 did not start"
}
# mig_monitor_stop NAME — ends it
mig_monitor_stop() { local mon=MON_$1; kill -TERM "${!mon}" 2>/dev/null || true; wait "${!mon}" || true; }

# vdpactl_on NAME ARGS... — vdpactl against vdpad NAME
vdpactl_on() {
  local h=$1; shift
  local busvar="BUS_$h"
  DBUS_SESSION_BUS_ADDRESS=${!busvar} "$top_builddir/src/tools/vdpactl" --bus session "$@"
}

# mig_qemu NAME H NODE APPEND SMP EXTRA... — a guest QEMU inside host H's namespace
mig_qemu() {
  local name=$1 h=$2 node=$3 append=$4 smp=$5; shift 5
  local ns; [ "$h" = a ] && ns=$MIG_NS_A || ns=$MIG_NS_B
  QEMU_NETNS=$ns start_qemu "$name" 256 "$smp" "$append" \
    -netdev "vhost-vdpa,vhostdev=$node,id=n0" -device "virtio-net-pci,netdev=n0,mq=on,vectors=6" "$@"
  wait_for 20 "$name's QMP socket" test -S "$E2E_WORK/$name.qmp" ||
    die "QEMU $name did not create its QMP socket: $(tail -3 "$E2E_WORK/$name.qemu.log")"
}

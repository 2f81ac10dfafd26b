#!/bin/bash
# tests/e2e/dbus.sh — vdpad's D-Bus service, its bus policy and vdpactl, against real peers:
# private dbus-daemons (no system bus needed), the FUSE node, gdbus and vdpactl.
# The migration part of the interface: PrepareIncoming/CancelIncoming against vdpad's real
# migration channel (a test CA made with certtool), the Incoming and MigrationToken
# properties, and `vdpactl monitor` seeing real signals (an open, and vdpa-traffic --relay
# switching the relay on and off through the uAPI path QEMU uses).
#
#   bus A ("system-like"): the default policy of Debian's system bus plus OUR policy file
#         data/org.vdpad1.conf, so the policy itself is tested: root and the group vdpad may
#         change devices, other users may only read.
#   bus B ("open"): anyone may connect and call; only vdpad's own credential check stands
#         between a plain user and CreateDevice (the session-bus case).
#
# Test users (created when missing, and left for the next run):
#   vdpad-test     not in the group vdpad    vdpad-test-op  in the group vdpad
#
# Needs root (FUSE mount with allow_other, users, runuser); exits 77 (skip) without it.
# Run from the build directory (make check does); VDPAD and VDPACTL override the binaries.
set -u

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root (mounts FUSE, creates test users)"; exit 77
fi
for tool in dbus-daemon gdbus python3 runuser useradd groupadd fusermount3 certtool; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=$(cd "$srcdir" && pwd)
VDPAD=${VDPAD:-$PWD/src/daemon/vdpad}
VDPACTL=${VDPACTL:-$PWD/src/tools/vdpactl}
VDPA_TRAFFIC=${VDPA_TRAFFIC:-$PWD/src/tools/vdpa-traffic}
POLICY=$srcdir/data/org.vdpad1.conf
for f in "$VDPAD" "$VDPACTL" "$VDPA_TRAFFIC" "$POLICY"; do
  [ -e "$f" ] || { echo "FAIL: $f is missing (run from the build directory)"; exit 1; }
done

MAC=52:54:00:12:34:56
failures=0
pids=()

tmp=$(mktemp -d /tmp/vdpad-e2e-dbus.XXXXXX)
chmod 755 "$tmp" # the test users reach the bus sockets and vdpactl in here

cleanup() {
  local pid mnt u
  exec 3>&- 2>/dev/null
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  for mnt in "$tmp/devA" "$tmp/devA2" "$tmp/devB"; do
    if grep -qs " $mnt " /proc/mounts; then
      fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: passes when the command succeeds
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
not() { ! "$@"; }
# wait_for COMMAND...: up to 10 s
wait_for() { for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done; return 1; }
# run_rc WANT DESCRIPTION COMMAND...: the command exits WANT; its output is left in $out
run_rc() {
  local want=$1 what=$2; shift 2
  out=$("$@" 2>&1); local rc=$?
  if [ "$rc" = "$want" ]; then pass "$what (exit $rc)"
  else fail "$what: exit $rc, expected $want; output: $out"; fi
}
# contains TEXT PATTERN (fixed string)
contains() { grep -qF -- "$2" <<<"$1"; }
expect_out() {
  local what=$1 pattern=$2
  if contains "$out" "$pattern"; then pass "$what"; else fail "$what: '$pattern' not in: $out"; fi
}

# ---------------------------------------------------------------- users
# Created when missing and left in place (system accounts, no login, no home): another
# run of this test, in this or another build tree, may be using them right now.
in_group() { id -nG "$1" | tr ' ' '\n' | grep -qx "$2"; }  # USER GROUP
retry() {  # CHECK-COMMAND -- ACTION...: runs ACTION until CHECK holds (useradd may race)
  local check=$1; shift 2
  for _ in 1 2 3 4 5; do eval "$check" && return 0; "$@" 2>/dev/null; sleep 0.2; done
  eval "$check"
}
retry "getent group vdpad >/dev/null" -- groupadd --system vdpad \
  || { echo "FAIL: cannot create the group vdpad"; exit 1; }
retry "getent passwd vdpad-test >/dev/null" -- useradd --system --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin vdpad-test \
  || { echo "FAIL: cannot create the test user vdpad-test"; exit 1; }
retry "getent passwd vdpad-test-op >/dev/null" -- useradd --system --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin --groups vdpad vdpad-test-op \
  || { echo "FAIL: cannot create the test user vdpad-test-op"; exit 1; }
retry "in_group vdpad-test-op vdpad" -- usermod -a -G vdpad vdpad-test-op \
  || { echo "FAIL: cannot put vdpad-test-op in the group vdpad"; exit 1; }
if in_group vdpad-test vdpad; then
  echo "FAIL: vdpad-test is in the group vdpad; this test needs it outside"; exit 1
fi
mkdir -p "$tmp/bin" && cp "$VDPACTL" "$tmp/bin/vdpactl" && chmod 755 "$tmp/bin/vdpactl"
as_user() {  # USER ADDRESS COMMAND...: runs a command as USER on the bus at ADDRESS
  local user=$1 addr=$2; shift 2
  runuser -u "$user" -- env DBUS_SESSION_BUS_ADDRESS="$addr" "$@"
}

# ---------------------------------------------------------------- buses
cat >"$tmp/bus-a.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$tmp/bus-a</listen>
  <auth>EXTERNAL</auth>
  <!-- the default policy of Debian 12's system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <!-- the policy under test, as the system bus would read it from system.d -->
  <include>$POLICY</include>
</busconfig>
EOF
cat >"$tmp/bus-b.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$tmp/bus-b</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
start_bus() {  # NAME: starts the bus, sets ADDR_<NAME>
  dbus-daemon --config-file="$tmp/bus-$1.conf" --nofork --print-address=3 \
    3>"$tmp/bus-$1.addr" 2>"$tmp/bus-$1.log" &
  pids+=($!)
  if ! wait_for test -s "$tmp/bus-$1.addr"; then
    echo "FAIL: dbus-daemon for bus $1 did not start:"; cat "$tmp/bus-$1.log"; exit 1
  fi
  printf -v "ADDR_$1" '%s' "$(head -1 "$tmp/bus-$1.addr")"
}
start_bus a
start_bus b
echo "info: bus A (system-like, with data/org.vdpad1.conf) at $ADDR_a"
echo "info: bus B (open) at $ADDR_b"

name_owned() {  # ADDRESS
  gdbus call --address "$1" -d org.freedesktop.DBus -o /org/freedesktop/DBus \
    -m org.freedesktop.DBus.NameHasOwner org.vdpad1 2>/dev/null | grep -q true
}
start_vdpad() {  # ADDRESS DEVDIR LOG ARGS...: starts vdpad in the foreground, in the background
  local addr=$1 dir=$2 log=$3; shift 3
  DBUS_SESSION_BUS_ADDRESS=$addr "$VDPAD" -f --bus session --dev-dir "$dir" "$@" >"$log" 2>&1 &
  vdpad_pid=$!
  pids+=("$vdpad_pid")
}

# ---------------------------------------------------------------- the migration channel's PKI
# A CA, and one certificate of each role for 127.0.0.1, in the flat layout of --pki-dir:
# vdpad A is the source (it listens) and the destination (it asks itself) at once.
make_pki() {  # DIR
  (
    set -e
    cd "$1"
    certtool --generate-privkey --key-type ecdsa --outfile ca-key.pem
    printf 'cn = vdpad e2e CA\nca\ncert_signing_key\nexpiration_days = 2\n' >ca.info
    certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile cacert.pem
    for role in server client; do
      certtool --generate-privkey --key-type ecdsa --outfile ${role}key.pem
      if [ $role = server ]; then
        printf 'organization = vdpad e2e\ncn = localhost\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nexpiration_days = 2\n'
      else
        printf 'organization = vdpad e2e\ncn = host-a\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
      fi >$role.info
      certtool --generate-certificate --load-privkey ${role}key.pem --load-ca-certificate cacert.pem \
        --load-ca-privkey ca-key.pem --template $role.info --outfile ${role}cert.pem
    done
  ) >"$1.log" 2>&1
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$tmp/pki"
make_pki "$tmp/pki" || { echo "FAIL: certtool could not make the test PKI:"; cat "$tmp/pki.log"; exit 1; }
MIGPORT=$(free_port)
MIGSRC=127.0.0.1:$MIGPORT

# ---------------------------------------------------------------- bus A: vdpad as root
export DBUS_SESSION_BUS_ADDRESS=$ADDR_a
run_rc 3 "vdpactl list before vdpad runs: not reachable" "$VDPACTL" --bus session list
expect_out "vdpactl says why it cannot reach vdpad" "not reachable"

start_vdpad "$ADDR_a" "$tmp/devA" "$tmp/vdpad-a.log" --device "net:n0,mac=$MAC" --device blk:d0 \
  --pki-dir "$tmp/pki" --migration-listen "$MIGSRC"
vdpad_a=$vdpad_pid
if ! wait_for name_owned "$ADDR_a"; then
  echo "FAIL: vdpad did not take org.vdpad1 on bus A:"; cat "$tmp/vdpad-a.log"; exit 1
fi
pass "vdpad owns org.vdpad1 on bus A (pid $vdpad_a)"

# signals, from here on
gdbus monitor --address "$ADDR_a" --dest org.vdpad1 >"$tmp/monitor.log" 2>&1 &
pids+=($!)
wait_for grep -q "is owned by" "$tmp/monitor.log"

gcall() { gdbus call --address "$ADDR_a" -d org.vdpad1 "$@"; }
mgr() { gcall -o /org/vdpad1 -m "org.vdpad1.Manager.$1" "${@:2}"; }
prop() {  # OBJECT PROPERTY
  gcall -o "$1" -m org.freedesktop.DBus.Properties.Get org.vdpad1.Device "$2"
}
N0=/org/vdpad1/device/n0
opener_is() { prop $N0 OpenerPid | grep -qF "<uint32 $1>"; }

# introspection
run_rc 0 "gdbus introspect /org/vdpad1" gdbus introspect --address "$ADDR_a" -d org.vdpad1 -o /org/vdpad1
expect_out "Manager has CreateDevice(in s spec, out o device)" "CreateDevice(in  s spec,"
expect_out "Manager has the DeviceAdded signal" "DeviceAdded(o device,"
run_rc 0 "gdbus introspect $N0" gdbus introspect --address "$ADDR_a" -d org.vdpad1 -o $N0
for p in "readonly s Name" "readonly s NodePath" "readonly s Type" "readonly s Backend" \
         "readonly s Mode" "readonly t Features" "readonly y Status" "readonly s MAC" \
         "readonly u QueuePairs" "readonly u OpenerPid" "readonly u OwnerPid" \
         "readonly a(ua{st}) QueueCounters" "readonly s MigrationToken" "readonly s Incoming" \
         "readonly t DirtyMarks" "PrepareIncoming(in  s source," "CancelIncoming();" \
         "ModeChanged(s mode," "DirtyPagesLogged(t total_marks," "Stopped(a(uq) bases);" \
         "StateRestored(u commands," "MigrationFailed(s reason);"; do
  expect_out "Device member: $p" "$p"
done

# list
run_rc 0 "gdbus ListDevices" mgr ListDevices
expect_out "ListDevices names blk d0" "'/org/vdpad1/device/d0'"
expect_out "ListDevices names net n0" "'$N0'"
run_rc 0 "vdpactl list" "$VDPACTL" --bus session list
expect_out "vdpactl list has a header" "NAME"
expect_out "vdpactl list shows n0's MAC" "$MAC"
expect_out "vdpactl list shows n0's node" "$tmp/devA/n0"
first=$(head -1 <<<"$out")
check "vdpactl list header has NAME TYPE BACKEND MODE NODE OPENER" \
  grep -qE '^NAME +TYPE +BACKEND +MODE +NODE +OPENER' <<<"$first"

# show, and the properties through gdbus
run_rc 0 "gdbus Get MAC" prop $N0 MAC
expect_out "MAC property is the one given" "'$MAC'"
run_rc 0 "gdbus Get NodePath" prop $N0 NodePath
expect_out "NodePath is the node in --dev-dir" "'$tmp/devA/n0'"
run_rc 0 "gdbus GetDevice n0" mgr GetDevice n0
expect_out "GetDevice answers the object path" "objectpath '$N0'"
run_rc 0 "vdpactl show n0" "$VDPACTL" --bus session show n0
expect_out "show: MAC" "MAC            $MAC"
expect_out "show: Type" "Type           net"
expect_out "show: Backend" "Backend        sim-net"
expect_out "show: Mode" "Mode           passthrough"
expect_out "show: closed node has no opener" "OpenerPid      -"
expect_out "show: queue counters of queue 0" "queue 0"
expect_out "show: named counters" "received_desc="
run_rc 1 "vdpactl show of an unknown device" "$VDPACTL" --bus session show nosuch
expect_out "show unknown: the daemon's message" "no device named nosuch"

# JSON
"$VDPACTL" --bus session --json list >"$tmp/list.json" 2>&1
check "vdpactl --json list parses and has n0 with its MAC and counters" python3 - "$tmp/list.json" "$MAC" <<'EOF'
import json, sys
devs = json.load(open(sys.argv[1]))
n0 = [d for d in devs if d["Name"] == "n0"][0]
assert n0["MAC"] == sys.argv[2], n0
assert n0["ObjectPath"] == "/org/vdpad1/device/n0"
assert n0["Type"] == "net" and n0["OpenerPid"] == 0 and isinstance(n0["Features"], int)
assert [q["Queue"] for q in n0["QueueCounters"]] == [0, 1, 2], n0["QueueCounters"]
assert "received_desc" in n0["QueueCounters"][0]["Counters"]
assert sorted(d["Name"] for d in devs) == ["d0", "n0"]
EOF
"$VDPACTL" --bus session --json show d0 >"$tmp/show.json" 2>&1
check "vdpactl --json show d0 parses: blk, no MAC" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["Name"] == "d0" and d["Type"] == "blk" and d["MAC"] == "" and d["QueuePairs"] == 0, d
' "$tmp/show.json"

# create
run_rc 0 "vdpactl create net:n1.a-b" "$VDPACTL" --bus session create "net:n1.a-b,queues=2"
expect_out "create names the node" "$tmp/devA/n1.a-b"
check "the new node file appears in the dev dir" test -f "$tmp/devA/n1.a-b"
N1=/org/vdpad1/device/n1_2ea_2db
run_rc 0 "the new device is listed with an escaped path" mgr ListDevices
expect_out "ListDevices has $N1" "'$N1'"
run_rc 0 "gdbus Get QueuePairs of the new device" prop $N1 QueuePairs
expect_out "QueuePairs is the queues= given" "<uint32 2>"
check "DeviceAdded was signalled" wait_for grep -qF "DeviceAdded (objectpath '$N1', 'n1.a-b')" "$tmp/monitor.log"
run_rc 1 "vdpactl create of an existing name fails" "$VDPACTL" --bus session create net:n1.a-b
expect_out "the error names the device" "device n1.a-b already exists"
run_rc 1 "gdbus CreateDevice of an existing name" mgr CreateDevice net:n0
expect_out "error name Exists" "org.vdpad1.Error.Exists"
run_rc 0 "n0 is untouched by the refused create" prop $N0 MAC
expect_out "n0 keeps its MAC" "'$MAC'"
run_rc 1 "gdbus CreateDevice of a bad spec" mgr CreateDevice "net:n9,mtu=1"
expect_out "error name InvalidArgument" "org.vdpad1.Error.InvalidArgument"
expect_out "the message names the value" "mtu '1' is not in 68..65535"
check "no node for the refused spec" test ! -e "$tmp/devA/n9"
run_rc 1 "vdpactl create of a bad spec" "$VDPACTL" --bus session create "frob:x"
expect_out "vdpactl prints the daemon's message" "unknown type 'frob'"
run_rc 1 "gdbus CreateDevice of a kernel device that does not exist" \
  mgr CreateDevice "kernel:k0,path=$tmp/no-such-vhost-vdpa"
check "no node for the failed kernel device" test ! -e "$tmp/devA/k0"

# destroy
run_rc 1 "gdbus DestroyDevice of an unknown device" mgr DestroyDevice nosuch
expect_out "error name NotFound" "org.vdpad1.Error.NotFound"
run_rc 1 "vdpactl destroy of an unknown device" "$VDPACTL" --bus session destroy nosuch
expect_out "vdpactl destroy unknown: message" "no device named nosuch"

# open the node (FUSE open from this shell): in use
exec 3<>"$tmp/devA/n0"
opener=$BASHPID
check "OpenerPid becomes this shell's pid" wait_for opener_is "$opener"
run_rc 0 "vdpactl show of the open node" "$VDPACTL" --bus session show n0
expect_out "show: OpenerPid" "OpenerPid      $opener"
run_rc 1 "gdbus DestroyDevice of the open node" mgr DestroyDevice n0
expect_out "error name Busy" "org.vdpad1.Error.Busy"
expect_out "Busy names the opener" "in use by pid $opener"
run_rc 1 "vdpactl destroy of the open node" "$VDPACTL" --bus session destroy n0
check "the node is still there" test -e "$tmp/devA/n0"
changed_line() {  # TEXT: a PropertiesChanged of n0 that holds TEXT
  grep -F "$N0: org.freedesktop.DBus.Properties.PropertiesChanged ('org.vdpad1.Device', {" \
    "$tmp/monitor.log" | grep -qF "$1"
}
check "PropertiesChanged: OpenerPid set on open" wait_for changed_line "'OpenerPid': <uint32 $opener>}"
exec 3>&-
check "OpenerPid is 0 again after close" wait_for opener_is 0
check "PropertiesChanged: OpenerPid 0 on close" wait_for changed_line "'OpenerPid': <uint32 0>}"
check "no PropertiesChanged carries QueueCounters" not grep -q QueueCounters "$tmp/monitor.log"

run_rc 0 "vdpactl destroy n1.a-b" "$VDPACTL" --bus session destroy n1.a-b
check "its node file is gone" wait_for test ! -e "$tmp/devA/n1.a-b"
check "DeviceRemoved was signalled" wait_for grep -qF "DeviceRemoved (objectpath '$N1', 'n1.a-b')" "$tmp/monitor.log"
run_rc 1 "its object is gone" prop $N1 Name
run_rc 0 "vdpactl --json destroy prints JSON" "$VDPACTL" --bus session --json create net:j0
"$VDPACTL" --bus session --json destroy j0 >"$tmp/destroy.json"
check "vdpactl --json destroy parses" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d == {"Name": "j0", "Destroyed": True}, d
' "$tmp/destroy.json"

# usage errors
run_rc 2 "vdpactl without a command" "$VDPACTL" --bus session
run_rc 2 "vdpactl with an unknown command" "$VDPACTL" --bus session frob
run_rc 2 "vdpactl with a bad --bus" "$VDPACTL" --bus nope list
run_rc 2 "vdpactl show without NAME" "$VDPACTL" --bus session show

# ---------------------------------------------------------------- bus A: migration
token_of() { prop $N0 MigrationToken | sed -n "s/^(<'\(.*\)'>,)$/\1/p"; }
run_rc 0 "gdbus Get MigrationToken of the closed node" prop $N0 MigrationToken
expect_out "no token while closed" "(<''>,)"
run_rc 0 "gdbus PrepareIncoming from this vdpad's own channel" \
  gcall -o $N0 -m org.vdpad1.Device.PrepareIncoming "$MIGSRC" n0 0123abcd
run_rc 0 "gdbus Get Incoming" prop $N0 Incoming
expect_out "Incoming names the source and its device" "'$MIGSRC n0'"
check "PropertiesChanged: Incoming" wait_for grep -qF "{'Incoming': <'$MIGSRC n0'>}" "$tmp/monitor.log"
run_rc 0 "vdpactl show: Incoming" "$VDPACTL" --bus session show n0
expect_out "show: Incoming" "Incoming       $MIGSRC n0"
run_rc 0 "vdpactl cancel-incoming n0" "$VDPACTL" --bus session cancel-incoming n0
expect_out "cancel-incoming says so" "n0: not prepared for a migration"
run_rc 0 "Incoming is empty again" prop $N0 Incoming
expect_out "Incoming ''" "(<''>,)"
run_rc 0 "vdpactl prepare-incoming n0" "$VDPACTL" --bus session prepare-incoming n0 "$MIGSRC" n0 feedbeef
expect_out "prepare-incoming says so" "n0: prepared to receive n0's state from $MIGSRC"
"$VDPACTL" --bus session --json show n0 >"$tmp/prepared.json"
check "vdpactl --json show: Incoming, MigrationToken, DirtyMarks" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["Incoming"] == sys.argv[2] + " n0" and d["MigrationToken"] == "" and d["DirtyMarks"] == 0, d
' "$tmp/prepared.json" "$MIGSRC"
run_rc 0 "gdbus CancelIncoming" gcall -o $N0 -m org.vdpad1.Device.CancelIncoming
nobody=127.0.0.1:$(free_port)
run_rc 1 "vdpactl prepare-incoming from a source nobody listens on" \
  "$VDPACTL" --bus session prepare-incoming n0 "$nobody" n0 feedbeef
expect_out "the error says the source is unreachable" "the source vdpad is unreachable"
run_rc 1 "gdbus PrepareIncoming with a bad device name" \
  gcall -o $N0 -m org.vdpad1.Device.PrepareIncoming "$MIGSRC" "no/such" t
expect_out "error name InvalidArgument" "org.vdpad1.Error.InvalidArgument"
run_rc 0 "the refused calls left n0 unprepared" prop $N0 Incoming
expect_out "Incoming still ''" "(<''>,)"
run_rc 2 "vdpactl prepare-incoming without the token" "$VDPACTL" --bus session prepare-incoming n0 "$MIGSRC" n0

# monitor: one signal, as JSON, from an open of the node
"$VDPACTL" --bus session monitor --json --count 1 n0 >"$tmp/mon1.json" 2>"$tmp/mon1.err" &
mon=$!
pids+=("$mon")
check "vdpactl monitor says when it is subscribed" wait_for grep -q "monitoring n0" "$tmp/mon1.err"
exec 3<>"$tmp/devA/n0"
opener=$BASHPID
wait "$mon"; rc=$?
check "vdpactl monitor --count 1 exits 0 after one signal (got $rc)" test "$rc" = 0
check "monitor --json: the open, with the opener and the session's token" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
e = json.loads(lines[0])
assert e["device"] == "n0" and e["signal"] == "PropertiesChanged", e
assert e["object_path"] == "/org/vdpad1/device/n0" and e["time"].endswith("Z"), e
changed = e["args"]["changed"]
assert changed["OpenerPid"] == int(sys.argv[2]) and len(changed["MigrationToken"]) == 32, e
' "$tmp/mon1.json" "$opener"
token=$(token_of)
check "MigrationToken is the open session's ($token)" grep -q "\"$token\"" "$tmp/mon1.json"
exec 3>&-
check "MigrationToken is empty again once closed" wait_for test -z "$(token_of)"
run_rc 0 "vdpactl monitor --timeout 1 ends by itself" "$VDPACTL" --bus session monitor --timeout 1 n0
"$VDPACTL" --bus session monitor >/dev/null 2>"$tmp/mon0.err" &
mon=$!
pids+=("$mon")
wait_for grep -q "monitoring every device" "$tmp/mon0.err"
kill -TERM "$mon"; wait "$mon"; rc=$?
check "vdpactl monitor exits 0 on SIGTERM (got $rc)" test "$rc" = 0

# monitor: the relay switched on and off through the uAPI (vdpa-traffic --relay, as QEMU
# does at a migration's start and cancel); also as a user outside the group vdpad, whom
# the policy lets receive the signals
"$VDPACTL" --bus session monitor --json n0 >"$tmp/mon2.json" 2>"$tmp/mon2.err" &
mon=$!
pids+=("$mon")
as_user vdpad-test "$ADDR_a" "$tmp/bin/vdpactl" --bus session monitor n0 \
  >"$tmp/mon3.txt" 2>"$tmp/mon3.err" &
mon_user=$!
pids+=("$mon_user")
check "vdpactl monitor (root) is subscribed" wait_for grep -q "monitoring n0" "$tmp/mon2.err"
check "vdpactl monitor (vdpad-test) is subscribed" wait_for grep -q "monitoring n0" "$tmp/mon3.err"
t0=$(date +%s%N)
run_rc 0 "vdpa-traffic --relay on n0" "$VDPA_TRAFFIC" --relay -n 400000 -r 12 "$tmp/devA/n0"
expect_out "vdpa-traffic: every frame back, every written page logged" "dirty_log=complete result=PASS"
traffic_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the node is closed again" wait_for opener_is 0
kill -INT "$mon"; wait "$mon"; rc=$?
check "vdpactl monitor exits 0 on SIGINT (got $rc)" test "$rc" = 0
kill -TERM "$mon_user"; wait "$mon_user"
check "monitor --json: relay on, dirty pages logged, relay off, the stop (traffic ran $traffic_ms ms)" \
  python3 - "$tmp/mon2.json" "$traffic_ms" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
sig = [e["signal"] for e in events]
modes = [(i, e["args"]["mode"]) for i, e in enumerate(events) if e["signal"] == "ModeChanged"]
assert [m for _, m in modes] == ["relay", "passthrough"], (modes, sig)
on, off = modes[0][0], modes[1][0]
assert events[on]["args"]["switch_ms"] > 0, events[on]
dirty = [(i, e["args"]) for i, e in enumerate(events) if e["signal"] == "DirtyPagesLogged"]
assert dirty and all(a["total_marks"] > 0 for _, a in dirty), dirty
# paced: at most one a second while the relay runs, and a last one when it ends
assert len(dirty) <= int(sys.argv[2]) // 1000 + 2, (len(dirty), sys.argv[2])
assert dirty[-1][0] > off, (dirty, off)
assert dirty[-1][1]["total_marks"] == max(a["total_marks"] for _, a in dirty), dirty
if int(sys.argv[2]) > 1500:  # long enough for a signal while the relay ran
    assert any(on < i < off and a["marks_per_second"] > 0 for i, a in dirty), dirty
stops = [e for e in events if e["signal"] == "Stopped"]
assert len(stops) == 1 and stops[0]["args"]["bases"][0]["Queue"] == 0, stops
mode_props = [e["args"]["changed"]["Mode"] for e in events
              if e["signal"] == "PropertiesChanged" and "Mode" in e["args"]["changed"]]
assert mode_props == ["relay", "passthrough"], mode_props
PY
check "vdpad-test's monitor (text) saw the switches" \
  grep -qE "^[0-9:.]+ n0 ModeChanged mode=relay switch_ms=[0-9.]+$" "$tmp/mon3.txt"
check "... and the dirty pages" grep -qE " n0 DirtyPagesLogged total_marks=[1-9][0-9]* " "$tmp/mon3.txt"

# a second vdpad cannot take the name
start_vdpad "$ADDR_a" "$tmp/devA2" "$tmp/vdpad-a2.log"
wait "$vdpad_pid"; rc=$?
check "a second vdpad on the same bus exits 1 (got $rc)" test "$rc" = 1
check "and says who owns org.vdpad1" grep -q "owns org.vdpad1" "$tmp/vdpad-a2.log"
check "and leaves no mount behind" not grep -qs " $tmp/devA2 " /proc/mounts
check "the first vdpad still answers" name_owned "$ADDR_a"

# ---------------------------------------------------------------- bus A: the policy
run_rc 0 "policy: vdpad-test may call ListDevices" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o /org/vdpad1 -m org.vdpad1.Manager.ListDevices
expect_out "policy: vdpad-test sees n0" "'$N0'"
run_rc 0 "policy: vdpad-test may read properties" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o $N0 -m org.freedesktop.DBus.Properties.GetAll org.vdpad1.Device
expect_out "policy: vdpad-test reads the MAC" "'$MAC'"
run_rc 0 "policy: vdpad-test may introspect" as_user vdpad-test "$ADDR_a" \
  gdbus introspect --session -d org.vdpad1 -o /org/vdpad1
run_rc 1 "policy: vdpad-test may not CreateDevice" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o /org/vdpad1 -m org.vdpad1.Manager.CreateDevice net:evil
expect_out "policy: refused by the bus" "org.freedesktop.DBus.Error.AccessDenied"
check "policy: no device was created" test ! -e "$tmp/devA/evil"
run_rc 1 "policy: vdpad-test may not DestroyDevice" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o /org/vdpad1 -m org.vdpad1.Manager.DestroyDevice d0
expect_out "policy: refused by the bus" "org.freedesktop.DBus.Error.AccessDenied"
check "policy: d0 survives" test -e "$tmp/devA/d0"
run_rc 0 "policy: vdpactl list as vdpad-test" as_user vdpad-test "$ADDR_a" "$tmp/bin/vdpactl" --bus session list
run_rc 1 "policy: vdpactl create as vdpad-test fails with exit 1" as_user vdpad-test "$ADDR_a" \
  "$tmp/bin/vdpactl" --bus session create net:evil
expect_out "policy: vdpactl explains" "root or membership of the group vdpad"
run_rc 1 "policy: vdpad-test may not own org.vdpad1" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus \
  -m org.freedesktop.DBus.RequestName org.vdpad1 4
run_rc 1 "policy: vdpad-test may not PrepareIncoming" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o $N0 -m org.vdpad1.Device.PrepareIncoming "$MIGSRC" n0 t
expect_out "policy: refused by the bus" "org.freedesktop.DBus.Error.AccessDenied"
run_rc 1 "policy: vdpactl prepare-incoming as vdpad-test fails with exit 1" as_user vdpad-test \
  "$ADDR_a" "$tmp/bin/vdpactl" --bus session prepare-incoming n0 "$MIGSRC" n0 t
run_rc 1 "policy: vdpad-test may not CancelIncoming" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o $N0 -m org.vdpad1.Device.CancelIncoming
run_rc 0 "policy: vdpad-test may read Incoming" as_user vdpad-test "$ADDR_a" \
  gdbus call --session -d org.vdpad1 -o $N0 -m org.freedesktop.DBus.Properties.Get \
  org.vdpad1.Device Incoming
expect_out "policy: nothing was prepared" "(<''>,)"
run_rc 0 "policy: vdpad-test-op (group vdpad) may PrepareIncoming" as_user vdpad-test-op "$ADDR_a" \
  "$tmp/bin/vdpactl" --bus session prepare-incoming n0 "$MIGSRC" n0 t
run_rc 0 "policy: vdpad-test-op may CancelIncoming" as_user vdpad-test-op "$ADDR_a" \
  "$tmp/bin/vdpactl" --bus session cancel-incoming n0
run_rc 0 "policy: vdpad-test-op (group vdpad) may CreateDevice" as_user vdpad-test-op "$ADDR_a" \
  "$tmp/bin/vdpactl" --bus session create net:op0
check "policy: the group member's device exists" test -e "$tmp/devA/op0"
run_rc 0 "policy: vdpad-test-op may DestroyDevice" as_user vdpad-test-op "$ADDR_a" \
  "$tmp/bin/vdpactl" --bus session destroy op0

# ---------------------------------------------------------------- bus B: vdpad's own check
start_vdpad "$ADDR_b" "$tmp/devB" "$tmp/vdpad-b.log" --device net:b0
vdpad_b=$vdpad_pid
if ! wait_for name_owned "$ADDR_b"; then
  echo "FAIL: vdpad did not take org.vdpad1 on bus B:"; cat "$tmp/vdpad-b.log"; exit 1
fi
run_rc 0 "open bus: vdpad-test may list" as_user vdpad-test "$ADDR_b" "$tmp/bin/vdpactl" --bus session list
expect_out "open bus: b0 listed" "b0"
run_rc 1 "open bus: vdpad refuses CreateDevice from vdpad-test itself" as_user vdpad-test "$ADDR_b" \
  gdbus call --session -d org.vdpad1 -o /org/vdpad1 -m org.vdpad1.Manager.CreateDevice net:evil
expect_out "open bus: AccessDenied from vdpad" "org.freedesktop.DBus.Error.AccessDenied"
expect_out "open bus: the message names the uid" "uid $(id -u vdpad-test)"
check "open bus: no device was created" test ! -e "$tmp/devB/evil"
run_rc 1 "open bus: vdpad refuses DestroyDevice from vdpad-test" as_user vdpad-test "$ADDR_b" \
  "$tmp/bin/vdpactl" --bus session destroy b0
check "open bus: b0 survives" test -e "$tmp/devB/b0"
check "open bus: vdpad logged the refusal" grep -q "refused DestroyDevice from uid $(id -u vdpad-test)" "$tmp/vdpad-b.log"
run_rc 1 "open bus: vdpad refuses PrepareIncoming from vdpad-test itself" as_user vdpad-test "$ADDR_b" \
  gdbus call --session -d org.vdpad1 -o /org/vdpad1/device/b0 -m org.vdpad1.Device.PrepareIncoming \
  "$MIGSRC" n0 t
expect_out "open bus: AccessDenied from vdpad" "org.freedesktop.DBus.Error.AccessDenied"
expect_out "open bus: the message names the method" "PrepareIncoming is only for root and members of the group vdpad"
run_rc 1 "open bus: a vdpad without a migration channel cannot be prepared" \
  env DBUS_SESSION_BUS_ADDRESS="$ADDR_b" "$VDPACTL" --bus session prepare-incoming b0 "$MIGSRC" n0 t
expect_out "open bus: it says how to start vdpad" "this vdpad has no migration channel: start it with --pki-dir/--migration-listen"
run_rc 0 "vdpactl --bus ADDRESS reaches vdpad B" "$VDPACTL" --bus "$ADDR_b" list
expect_out "vdpactl --bus ADDRESS lists b0" "b0"
run_rc 0 "open bus: vdpad-test-op (group vdpad) may create" as_user vdpad-test-op "$ADDR_b" \
  "$tmp/bin/vdpactl" --bus session create net:op1
run_rc 0 "open bus: root may destroy" env DBUS_SESSION_BUS_ADDRESS="$ADDR_b" "$VDPACTL" --bus session destroy op1

# ---------------------------------------------------------------- SIGTERM
kill -TERM "$vdpad_a"; wait "$vdpad_a"; rc=$?
check "vdpad exits 0 on SIGTERM (got $rc)" test "$rc" = 0
check "its mount is gone" not grep -qs " $tmp/devA " /proc/mounts
check "org.vdpad1 is released" wait_for not name_owned "$ADDR_a"
run_rc 3 "vdpactl after vdpad stopped: not reachable" "$VDPACTL" --bus session list

echo "info: vdpad on bus A logged:"; sed 's/^/  | /' "$tmp/vdpad-a.log"
if [ "$failures" != 0 ]; then
  echo "FAIL: $failures check(s) failed"
  exit 1
fi
echo "PASS: all D-Bus checks"
exit 0

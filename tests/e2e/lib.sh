# lib.sh — shared by the end-to-end tests (sourced, bash).
#
# Each test prints what it checks ("ok: ..."), fails loudly ("FAIL: ..." and a non-zero
# exit, with the logs that explain it), and cleans up its own processes, mounts and files
# on every exit path. Tests needing root exit 77 (skip) without it; scripts/check runs as
# root and counts a skip as a failure.
set -euo pipefail

E2E_NAME=$(basename "$0" .sh)
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir/build}
VDPAD=${VDPAD:-$top_builddir/src/daemon/vdpad}
GUEST_DIR=${GUEST_DIR:-$top_builddir/tests/guest/image}
E2E_WORK=$(mktemp -d "${TMPDIR:-/tmp}/vdpad-$E2E_NAME.XXXXXX")
E2E_T0=$(date +%s%N)

_cleanups=()
on_exit() { _cleanups+=("$*"); }

_run_cleanups() {
  local rc=$? i
  set +e
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[i]}" >/dev/null 2>&1; done
  if [ $rc -ne 0 ] && [ -n "${E2E_KEEP:-}" ]; then
    echo "[$E2E_NAME] logs kept in $E2E_WORK"
  else
    rm -rf "$E2E_WORK"
  fi
  local verdict="FAIL (exit $rc)"
  [ $rc = 0 ] && verdict=PASS
  [ $rc = "${E2E_TCG_PANIC:-}" ] && verdict="STOPPED: the guest panicked"
  echo "[$E2E_NAME] $verdict in $(( ($(date +%s%N) - E2E_T0) / 1000000 )) ms"
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

log() { echo "[$E2E_NAME] $*"; }
ok() { echo "[$E2E_NAME] ok: $*"; }
die() {
  echo "[$E2E_NAME] FAIL: $*" >&2
  local f
  for f in "${E2E_SHOW_ON_FAIL[@]:-}"; do
    [ -n "$f" ] && [ -f "$f" ] && { echo "---- tail of $f" >&2; tail -25 "$f" >&2; }
  done
  exit 1
}
E2E_SHOW_ON_FAIL=()
show_on_fail() { E2E_SHOW_ON_FAIL+=("$@"); }

require_root() {
  if [ "$(id -u)" != 0 ]; then echo "[$E2E_NAME] SKIP: needs root (FUSE mounts, QEMU, /proc/<pid>/map_files)"; exit 77; fi
  [ -x "$VDPAD" ] || die "vdpad not built at $VDPAD"
}

# wait_for SECONDS DESCRIPTION COMMAND... — polls COMMAND every 0.1 s
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# start_vdpad NAME ARGS... — a vdpad in the foreground (background job) serving
# $E2E_WORK/NAME/dev, no D-Bus unless ARGS say so (a later --bus wins), inside network
# namespace $VDPAD_NETNS when set (only the network namespace: the FUSE mount must stay
# visible to QEMU). Sets VDPAD_PID_<NAME>, VDPAD_DIR_<NAME>.
start_vdpad() {
  local name=$1; shift
  local dir=$E2E_WORK/$name
  mkdir -p "$dir"
  local netns=()
  [ -n "${VDPAD_NETNS:-}" ] && netns=(nsenter "--net=/run/netns/$VDPAD_NETNS")
  "${netns[@]}" "$VDPAD" --foreground --bus none --dev-dir "$dir/dev" --log-level info "$@" >"$dir/vdpad.log" 2>&1 &
  local pid=$!
  printf -v "VDPAD_PID_$name" %s "$pid"
  printf -v "VDPAD_DIR_$name" %s "$dir/dev"
  on_exit "stop_vdpad $name"
  show_on_fail "$dir/vdpad.log"
  wait_for 10 "vdpad $name serving" grep -q 'serving' "$dir/vdpad.log" ||
    die "vdpad $name did not start: $(tail -3 "$dir/vdpad.log")"
  kill -0 "$pid" 2>/dev/null || die "vdpad $name exited: $(tail -3 "$dir/vdpad.log")"
}

stop_vdpad() {
  local name=$1 pidvar="VDPAD_PID_$1" dirvar="VDPAD_DIR_$1"
  local pid=${!pidvar:-} dir=${!dirvar:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  grep -q " $dir fuse" /proc/mounts && umount -l "$dir"
  printf -v "VDPAD_PID_$name" %s ""
}

# build_guest — the test guest (kernel + initramfs), cached under the build tree
build_guest() {
  "$top_srcdir/tests/guest/build-guest" "$GUEST_DIR" || die "building the guest image failed"
  [ -f "$GUEST_DIR/bzImage" ] && [ -f "$GUEST_DIR/initrd.gz" ] || die "guest image incomplete in $GUEST_DIR"
}

# start_qemu NAME MEM_MB SMP APPEND EXTRA_ARGS... — a TCG guest with shared memfd RAM, its
# console in $E2E_WORK/NAME.console, QMP at $E2E_WORK/NAME.qmp and a second QMP monitor at
# $E2E_WORK/NAME.ctl (QEMU serves one client per monitor), inside network namespace
# $QEMU_NETNS when set. Sets QEMU_PID_<NAME>.
start_qemu() {
  local name=$1 mem=$2 smp=$3 append=$4; shift 4
  local console=$E2E_WORK/$name.console
  local netns=()
  [ -n "${QEMU_NETNS:-}" ] && netns=(nsenter "--net=/run/netns/$QEMU_NETNS")
  "${netns[@]}" qemu-system-x86_64 -machine q35 -accel tcg,thread=single -cpu qemu64 -smp "$smp" -m "$mem" \
    -object "memory-backend-memfd,id=mem0,size=${mem}M,share=on" -machine memory-backend=mem0 \
    -kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 $append" \
    -display none -no-reboot -monitor none \
    -chardev "socket,id=ser0,path=$E2E_WORK/$name.con,server=on,wait=off,logfile=$console" \
    -serial chardev:ser0 \
    -qmp "unix:$E2E_WORK/$name.qmp,server=on,wait=off" \
    -qmp "unix:$E2E_WORK/$name.ctl,server=on,wait=off" \
    "$@" >"$E2E_WORK/$name.qemu.log" 2>&1 &
  local pid=$!
  printf -v "QEMU_PID_$name" %s "$pid"
  on_exit "kill -KILL $pid; wait $pid"
  show_on_fail "$console" "$E2E_WORK/$name.qemu.log"
}

# console_send NAME LINE — types LINE on the guest's console (tests/guest/init reads
# "stop" and "poweroff")
console_send() {
  python3 - "$E2E_WORK/$1.con" "$2" <<'PY' || die "cannot type on $1's console"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
s.close()
PY
}

# guest_panicked NAME — the guest's kernel panicked (its console says so)
guest_panicked() { grep -aq 'Kernel panic' "$E2E_WORK/$1.console" 2>/dev/null; }

# on_guest_panic NAME — what a test does when a guest panics (unless mig_lib.sh, sourced
# first, defined it)
declare -F on_guest_panic >/dev/null ||
  on_guest_panic() { die "the guest $1's kernel panicked: $(console_line "$1" 'Kernel panic|RIP:')"; }

# wait_console NAME SECONDS PATTERN — waits for a console line matching PATTERN (grep -E)
wait_console() {
  local name=$1 secs=$2 pat=$3 pidvar="QEMU_PID_$1"
  local deadline=$(( $(date +%s) + secs ))
  while ! grep -aqE "$pat" "$E2E_WORK/$name.console" 2>/dev/null; do
    guest_panicked "$name" && on_guest_panic "$name"
    if proc_gone "${!pidvar}"; then
      grep -aqE "$pat" "$E2E_WORK/$name.console" 2>/dev/null && return 0
      die "QEMU $name exited before '$pat': $(tail -3 "$E2E_WORK/$name.qemu.log")"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "no '$pat' on $name's console within ${secs}s"
    sleep 0.2
  done
}

# console_line NAME PATTERN — the last console line matching PATTERN
console_line() { grep -aE "$2" "$E2E_WORK/$1.console" | tail -1 | tr -d '\r'; }

# field LINE KEY — the value of KEY=value in a key=value line
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }

# proc_gone PID — PID runs no more: it is gone, or a zombie (a QEMU that libvirtd started
# is not our child; it stays a zombie until its parent or init reaps it)
proc_gone() {
  local state
  state=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -z "$state" ] || [ "$state" = Z ]
}

# wait_exit PID SECONDS
wait_exit() {
  local pid=$1 secs=$2
  for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
  return 1
}

# ---- a private libvirtd (Debian's 9.0) without systemd ----------------------------------
#
# start_libvirtd NAME — libvirtd in its own mount namespace, where /etc/libvirt,
# /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and /run/libvirt are private
# directories under $E2E_WORK/NAME. A tmpfs covers /run inside, so /run/libvirt need not
# exist on the host, and the host's /run (a system libvirtd's sockets, D-Bus) stays out of
# reach. The namespace gets a copy of the mounts of the moment and nothing propagates
# later (the host's mounts are private): start vdpad BEFORE this, so its nodes are there
# for libvirtd and QEMU. qemu.conf runs QEMU as root without namespaces, cgroups or a
# security driver, and stdio_handler="file" (no virtlogd). libvirtd probes QEMU's
# capabilities at its first start (about 8 s); the result is kept in $LIBVIRT_CAPS_CACHE
# and seeded into later instances (libvirtd revalidates it: binaries' ctimes, kernel, CPU).
# Sets LIBVIRTD_PID_<NAME>, LIBVIRTD_NS_<NAME> (pid of a process holding the namespace;
# `nsenter -t PID -m` enters it) and LIBVIRTD_DIR_<NAME>. On exit, domains are destroyed,
# QEMUs left in the namespace killed, libvirtd stopped and the namespace released.
LIBVIRT_CAPS_CACHE=${LIBVIRT_CAPS_CACHE:-$top_builddir/tests/e2e/cache/libvirt-qemu-capabilities}

# libvirt-daemon-system creates them; a machine without that package may lack them
ensure_libvirt_users() {
  getent group kvm >/dev/null || groupadd --system kvm || die "cannot create the group kvm"
  getent passwd libvirt-qemu >/dev/null ||
    useradd --system --gid kvm --home-dir /var/lib/libvirt --no-create-home \
      --shell /usr/sbin/nologin libvirt-qemu || die "cannot create the user libvirt-qemu"
}

# write_libvirt_conf DIR [LINE...] — libvirtd.conf (LINEs first) and qemu.conf for a
# test's own libvirtd: root-only socket without auth, log to its /var/log, QEMU as root
# with no namespaces, security driver or cgroups
write_libvirt_conf() {
  local d=$1; shift
  { [ $# -gt 0 ] && printf '%s\n' "$@"
    cat <<EOC
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "2:file:/var/log/libvirt/libvirtd.log"
EOC
  } >"$d/libvirtd.conf"
  cat >"$d/qemu.conf" <<EOC
user = "root"
group = "root"
namespaces = []
security_driver = "none"
cgroup_controllers = []
stdio_handler = "file"
EOC
}

start_libvirtd() {
  local name=$1 dir=$E2E_WORK/$1 d holder pid t0
  for d in libvirtd virsh unshare nsenter qemu-system-x86_64; do
    command -v "$d" >/dev/null || die "$d is not installed"
  done
  for d in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    [ -d "$d" ] || die "$d is missing (install libvirt-daemon-system)"
  done
  case $E2E_WORK/ in /run/*) die "E2E_WORK ($E2E_WORK) must not lie under /run: libvirtd's namespace covers /run" ;; esac
  ensure_libvirt_users
  mkdir -p "$dir"/{etc,run,lib,cache/qemu/capabilities,log/qemu}
  write_libvirt_conf "$dir/etc"
  show_on_fail "$dir/libvirtd.out" "$dir/log/libvirtd.log"

  unshare --mount --propagation private sleep infinity &
  holder=$!
  printf -v "LIBVIRTD_NS_$name" %s "$holder"
  printf -v "LIBVIRTD_DIR_$name" %s "$dir"
  on_exit "stop_libvirtd $name"
  wait_for 5 "mount namespace" _in_own_mntns "$holder" || die "unshare --mount did not start"
  nsenter -t "$holder" -m sh -ec "
    mount -t tmpfs -o mode=0755 e2e-run /run
    mkdir /run/libvirt
    mount --bind '$dir/run' /run/libvirt
    mount --bind '$dir/etc' /etc/libvirt
    mount --bind '$dir/lib' /var/lib/libvirt
    mount --bind '$dir/cache' /var/cache/libvirt
    mount --bind '$dir/log' /var/log/libvirt" || die "private mounts for libvirtd $name failed"

  [ -d "$LIBVIRT_CAPS_CACHE" ] && cp -p "$LIBVIRT_CAPS_CACHE"/*.xml "$dir/cache/qemu/capabilities/" 2>/dev/null
  t0=$(date +%s%N)
  nsenter -t "$holder" -m libvirtd -p /run/libvirt/libvirtd.pid >"$dir/libvirtd.out" 2>&1 &
  pid=$!   # nsenter execs libvirtd: this is libvirtd's pid
  printf -v "LIBVIRTD_PID_$name" %s "$pid"
  local deadline=$(( $(date +%s) + 60 ))
  until [ -S "$dir/run/libvirt-sock" ] && vsh "$name" version >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "libvirtd $name exited: $(tail -3 "$dir/libvirtd.out")"
    [ "$(date +%s)" -lt "$deadline" ] || die "libvirtd $name did not answer within 60 s"
    sleep 0.1
  done
  log "libvirtd $name up in $(( ($(date +%s%N) - t0) / 1000000 )) ms (pid $pid)"
  _save_caps_cache "$dir/cache/qemu/capabilities"
}

_in_own_mntns() { [ "$(readlink "/proc/$1/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]; }

# keeps what libvirtd probed when it differs from the cache (replaced whole, by rename)
_save_caps_cache() {
  local src=$1 tmp=$LIBVIRT_CAPS_CACHE.tmp.$$
  ls "$src"/*.xml >/dev/null 2>&1 || return 0
  diff -rq "$src" "$LIBVIRT_CAPS_CACHE" >/dev/null 2>&1 && return 0
  rm -rf "$tmp"
  mkdir -p "$tmp" && cp -p "$src"/*.xml "$tmp/" || { rm -rf "$tmp"; return 0; }
  rm -rf "$LIBVIRT_CAPS_CACHE" && mv "$tmp" "$LIBVIRT_CAPS_CACHE"
}

stop_libvirtd() {
  local name=$1 pidvar="LIBVIRTD_PID_$1" nsvar="LIBVIRTD_NS_$1" d p mntns
  local pid=${!pidvar:-} holder=${!nsvar:-}
  [ -n "$holder" ] || return 0
  mntns=$(readlink "/proc/$holder/ns/mnt")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    for d in $(timeout 10 virsh -q -c "$(libvirtd_uri "$name")" list --all --name); do
      timeout 10 virsh -q -c "$(libvirtd_uri "$name")" destroy "$d"
      timeout 10 virsh -q -c "$(libvirtd_uri "$name")" undefine "$d"
    done
  fi
  # a QEMU libvirtd could not destroy, still in our namespace
  for p in $(pgrep -x qemu-system-x86 || true); do
    [ -n "$mntns" ] && [ "$(readlink "/proc/$p/ns/mnt")" = "$mntns" ] && kill -KILL "$p"
  done
  if [ -n "$pid" ]; then
    kill -TERM "$pid"
    wait_exit "$pid" 5 || { kill -KILL "$pid"; wait "$pid"; }
  fi
  kill -TERM "$holder"; wait "$holder"
  printf -v "LIBVIRTD_NS_$name" %s ""
  printf -v "LIBVIRTD_PID_$name" %s ""
}

# libvirtd_uri NAME — the URI of that libvirtd (its socket is reachable from outside)
libvirtd_uri() { local dirvar="LIBVIRTD_DIR_$1"; echo "qemu+unix:///system?socket=${!dirvar}/run/libvirt-sock"; }

# vsh NAME ARGS... — virsh on that libvirtd
vsh() { local name=$1; shift; virsh -q -c "$(libvirtd_uri "$name")" "$@"; }

# start_domain NAME DOM — `virsh start DOM` on libvirtd NAME; then QEMU_PID_<DOM> is QEMU's
# pid and $E2E_WORK/DOM.qemu.log its log, so wait_console DOM works when the domain's
# serial console is the file $E2E_WORK/DOM.console.
start_domain() {
  local name=$1 dom=$2 dirvar="LIBVIRTD_DIR_$1" out
  local dir=${!dirvar}
  ln -sf "$dir/log/qemu/$dom.log" "$E2E_WORK/$dom.qemu.log"
  show_on_fail "$E2E_WORK/$dom.console" "$dir/log/qemu/$dom.log"
  out=$(vsh "$name" start "$dom" 2>&1) || die "virsh start $dom failed: $out"
  wait_for 10 "QEMU pid file" test -s "$dir/run/qemu/$dom.pid" ||
    die "no pid file for $dom after virsh start"
  printf -v "QEMU_PID_$dom" %s "$(cat "$dir/run/qemu/$dom.pid")"
}

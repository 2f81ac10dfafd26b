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
  echo "[$E2E_NAME] $([ $rc = 0 ] && echo PASS || echo "FAIL (exit $rc)") in $(( ($(date +%s%N) - E2E_T0) / 1000000 )) ms"
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
# $E2E_WORK/NAME/dev, no D-Bus unless ARGS say so. Sets VDPAD_PID_<NAME>, VDPAD_DIR_<NAME>.
start_vdpad() {
  local name=$1; shift
  local dir=$E2E_WORK/$name
  mkdir -p "$dir"
  "$VDPAD" --foreground --bus none --dev-dir "$dir/dev" --log-level info "$@" >"$dir/vdpad.log" 2>&1 &
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
# console in $E2E_WORK/NAME.console and QMP at $E2E_WORK/NAME.qmp. Sets QEMU_PID_<NAME>.
start_qemu() {
  local name=$1 mem=$2 smp=$3 append=$4; shift 4
  local console=$E2E_WORK/$name.console
  qemu-system-x86_64 -machine q35,accel=tcg -cpu qemu64 -smp "$smp" -m "$mem" \
    -object "memory-backend-memfd,id=mem0,size=${mem}M,share=on" -machine memory-backend=mem0 \
    -kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 $append" \
    -display none -no-reboot -serial "file:$console" -monitor none \
    -qmp "unix:$E2E_WORK/$name.qmp,server=on,wait=off" \
    "$@" >"$E2E_WORK/$name.qemu.log" 2>&1 &
  local pid=$!
  printf -v "QEMU_PID_$name" %s "$pid"
  on_exit "kill -KILL $pid; wait $pid"
  show_on_fail "$console" "$E2E_WORK/$name.qemu.log"
}

# wait_console NAME SECONDS PATTERN — waits for a console line matching PATTERN (grep -E)
wait_console() {
  local name=$1 secs=$2 pat=$3 pidvar="QEMU_PID_$1"
  local deadline=$(( $(date +%s) + secs ))
  while ! grep -aqE "$pat" "$E2E_WORK/$name.console" 2>/dev/null; do
    if ! kill -0 "${!pidvar}" 2>/dev/null; then
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

# wait_exit PID SECONDS
wait_exit() {
  local pid=$1 secs=$2
  for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
  return 1
}

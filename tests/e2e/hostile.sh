#!/bin/bash
# tests/e2e/hostile.sh — misbehaving clients against a real vdpad (simulated NIC node):
#   a. one opener at a time (EBUSY), and the node is free again once the opener is gone;
#   b. clients SIGKILLed mid-setup (after SET_OWNER, after the IOTLB batch, after DRIVER_OK,
#      with frames in flight, during traffic): vdpad logs the close and resets the device,
#      its fds and mappings return to what they were, the node works for the next client;
#   c. rings the device must refuse (unmapped, read-only, in a write-sealed memfd, looping
#      descriptors, memory the client shrank under the running device): vdpad survives, the
#      device reports DEVICE_NEEDS_RESET, a reset recovers;
#   d. processes given the open file (fork, SCM_RIGHTS) get EPERM once another owns it;
#   e. bogus ioctls and IOTLB writes get their errno, and vdpad stays up;
#   f. client memory in a file of a FUSE filesystem the client serves itself and stops
#      answering: vdpad refuses it without touching it (it would wait forever).
# "The node works" = a good client — our kernel backend (a uAPI client) and the test driver,
# through vdpad's uAPI — exchanges frames with none lost. The checks of c, d and e are in
# tests/e2e/hostile_client.c, which prints one "ok:" line per check.
. "$(dirname "$0")/lib.sh"
require_root
HC=$top_builddir/tests/e2e/hostile_client
[ -x "$HC" ] || die "hostile_client not built at $HC (make check builds it)"

start_vdpad v0 --device net:n0
NODE=$VDPAD_DIR_v0/n0
VLOG=$E2E_WORK/v0/vdpad.log
VPID=$VDPAD_PID_v0
[ -e "$NODE" ] || die "node $NODE missing"

alive() { kill -0 "$VPID" 2>/dev/null || die "vdpad died: $(tail -5 "$VLOG")"; }
fd_count() { ls "/proc/$VPID/fd" | wc -l; }
map_count() { wc -l <"/proc/$VPID/maps"; }
client_maps() { grep -c 'memfd:' "/proc/$VPID/maps" || true; }
at_baseline() {
  [ "$(fd_count)" = "$BASE_FDS" ] && [ "$(map_count)" = "$BASE_MAPS" ] && [ "$(client_maps)" = 0 ]
}

# good_client AFTER — the node works: 256 frames through the loopback, none lost
good_client() {
  local out
  out=$(timeout 60 "$HC" good "$NODE" 256 2>&1) || die "good client after $1: $out"
  grep -q ', 0 lost' <<<"$out" || die "good client after $1: $out"
  ok "after $1: a good client (kernel backend + test driver) exchanges 256 frames, 0 lost"
}

# run_helper MODE [ARG] — runs hostile_client MODE NODE [ARG], shows its checks, fails if
# one failed
run_helper() {
  local mode=$1 out rc=0; shift
  out=$(timeout 60 "$HC" "$mode" "$NODE" "$@" 2>&1) || rc=$?
  sed 's/^/    /' <<<"$out"
  [ $rc = 0 ] || die "hostile_client $mode $* failed (exit $rc)"
  alive
}

# spawn OUTFILE ARGS... — hostile_client in the background; sets SPAWNED
spawn() {
  local out=$1; shift
  "$HC" "$@" >"$out" 2>&1 &
  SPAWNED=$!
  on_exit "kill -KILL $SPAWNED 2>/dev/null; wait $SPAWNED 2>/dev/null"
}

closed_logged() { grep -q "n0: closed (opened by pid $1); device reset" "$VLOG"; }

# abort_fuse_at DIR — ends the FUSE connection mounted at DIR, if any, without touching the
# filesystem (its server may never answer): a waiter on it would otherwise stay stuck
abort_fuse_at() {
  local dir=$1 dev ctl=/sys/fs/fuse/connections mounted_ctl=
  dev=$(awk -v d="$dir" '$5 == d {print $3}' /proc/self/mountinfo | tail -1)
  [ -n "$dev" ] || return 0
  [ -d "$ctl/${dev#*:}" ] || { mount -t fusectl none "$ctl" && mounted_ctl=1; }
  echo 1 >"$ctl/${dev#*:}/abort"
  umount -l "$dir"
  [ -z "$mounted_ctl" ] || umount "$ctl"
}

# Warm-up clients, then what vdpad holds with no client. A broken ring makes the device's
# worker thread log, and its first allocation creates its malloc arena (two mappings that
# stay): done once here, so that every later difference is a leak.
good_client "start-up"
"$HC" garbage "$NODE" loop >"$E2E_WORK/warmup.out" 2>&1 &
warmup=$!
wait "$warmup" || die "warm-up: $(cat "$E2E_WORK/warmup.out")"
# the kernel sends FUSE's release after the client is gone, not before its exit
wait_for 10 "the warm-up client's close" closed_logged "$warmup" || die "vdpad did not log the warm-up client's close"
wait_for 5 "no client memory mapped" test "$(client_maps)" = 0 || die "client memory still mapped after the first client"
BASE_FDS=$(fd_count)
BASE_MAPS=$(map_count)
log "vdpad (pid $VPID) without a client: $BASE_FDS fds, $BASE_MAPS mappings"

# ---------------------------------------------------------------- a. one opener at a time
log "a. a second open of an open node"
mkfifo "$E2E_WORK/hold.in"
"$HC" hold "$NODE" <"$E2E_WORK/hold.in" >"$E2E_WORK/hold.out" 2>&1 &
HOLDER=$!
on_exit "kill -KILL $HOLDER 2>/dev/null; wait $HOLDER 2>/dev/null"
exec 7>"$E2E_WORK/hold.in"
wait_for 10 "holder" grep -q held "$E2E_WORK/hold.out" || die "the holder did not open $NODE: $(cat "$E2E_WORK/hold.out")"
out=$("$HC" open "$NODE" 2>&1) && die "a second open succeeded while pid $HOLDER has the node open"
[ "$out" = "open: EBUSY" ] || die "second open: '$out', expected EBUSY"
ok "a second open while pid $HOLDER has the node open -> EBUSY"
exec 7>&-
wait_exit "$HOLDER" 10 || die "the holder did not exit"
wait_for 10 "open after close" "$HC" open "$NODE" || die "the node stayed busy after its opener closed it"
ok "after the opener closed it, open succeeds (FUSE RELEASE ended the session)"
wait_for 10 "holder's session closed" closed_logged "$HOLDER" || die "vdpad did not log the holder's close"
alive

# ---------------------------------------------------------------- b. SIGKILL mid-setup
log "b. clients SIGKILLed at each stage of setup"
for stage in owner iotlb driver_ok traffic busy; do
  spawn "$E2E_WORK/stage-$stage.out" stage "$NODE" "$stage"
  pid=$SPAWNED
  wait_for 20 "stage $stage" grep -q "stage $stage reached" "$E2E_WORK/stage-$stage.out" ||
    die "client did not reach stage $stage: $(cat "$E2E_WORK/stage-$stage.out")"
  [ "$stage" = busy ] && sleep 0.5 # let traffic run
  held="$(fd_count) fds, $(client_maps) client mappings"
  if [ "$stage" != owner ] && [ "$(client_maps)" = 0 ]; then
    die "stage $stage: vdpad maps none of the client's memory (the stage did not map it?)"
  fi
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  wait_for 10 "close of pid $pid" closed_logged "$pid" || die "stage $stage: vdpad did not log the close of pid $pid"
  inflight=$(grep -h 'in flight' "$E2E_WORK/stage-$stage.out" || true)
  ok "stage $stage (${inflight:+$inflight; }vdpad held $held): SIGKILL -> vdpad logged the close and the device reset"
  wait_for 10 "baseline" at_baseline ||
    die "stage $stage: vdpad has $(fd_count) fds (was $BASE_FDS), $(map_count) mappings (was $BASE_MAPS), $(client_maps) client mappings after the client died"
  ok "stage $stage: vdpad is back to $BASE_FDS fds and $BASE_MAPS mappings, no client memory mapped"
  alive
  good_client "a client killed at stage $stage"
done

# ---------------------------------------------------------------- c. garbage rings
log "c. rings the device must refuse"
for kind in unmapped readonly sealed loop truncate; do
  before=$(grep -c 'stopped, device needs reset' "$VLOG" || true)
  run_helper garbage "$kind"
  after=$(grep -c 'stopped, device needs reset' "$VLOG" || true)
  [ "$after" -gt "$before" ] || die "garbage $kind: vdpad did not log a stopped queue"
  ok "garbage $kind: vdpad logged the queue stopped and is still serving"
  good_client "garbage rings ($kind) and a reset"
done
wait_for 10 "baseline" at_baseline || die "after the garbage rings: $(fd_count) fds, $(map_count) mappings"

# ---------------------------------------------------------------- d. not the owner
log "d. processes that are not the owner"
run_helper nonowner
good_client "non-owner processes were refused"

# ---------------------------------------------------------------- e. bogus requests
log "e. bogus ioctls and IOTLB writes"
run_helper bogus
good_client "bogus requests"

# ---------------------------------------------------------------- f. memory on a hostile FUSE
log "f. client memory on the client's own FUSE filesystem, which stops answering"
mkdir "$E2E_WORK/fs"
spawn "$E2E_WORK/fusemem.out" fusemem "$NODE" "$E2E_WORK/fs"
# registered after the client's cleanup, so it runs before it: a client stuck in a request
# vdpad never answers cannot even be reaped until its filesystem is aborted
on_exit "abort_fuse_at $E2E_WORK/fs"
for _ in $(seq 100); do kill -0 "$SPAWNED" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SPAWNED" 2>/dev/null &&
  die "the client's IOTLB write did not return in 10 s: vdpad waits on the client's FUSE server"
rc=0
wait "$SPAWNED" || rc=$?
sed 's/^/    /' "$E2E_WORK/fusemem.out"
[ $rc = 0 ] || die "hostile_client fusemem failed (exit $rc)"
grep -q 'fuse.hostile filesystem' "$VLOG" || die "vdpad did not say why it refused the memory"
ok "vdpad refused memory on the client's FUSE filesystem without asking it anything"
alive
good_client "memory on a stalled FUSE filesystem"

wait_for 10 "baseline" at_baseline ||
  die "at the end: $(fd_count) fds (was $BASE_FDS), $(map_count) mappings (was $BASE_MAPS)"
ok "at the end vdpad holds what it held without a client: $BASE_FDS fds, $BASE_MAPS mappings"
alive
ok "vdpad (pid $VPID) served every client and is still running"

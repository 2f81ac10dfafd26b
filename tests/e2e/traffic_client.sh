#!/bin/bash
# Our own traffic client (vdpa-traffic: the test driver over the kernel-uAPI backend, the
# way DPDK's virtio-user opens a vhost-vdpa node) against a vdpad node backed by the
# simulated NIC, and against the same device through a chain of two vdpad instances
# (client -> vdpad A, kernel: backend -> vdpad B, simulator). Every frame must come back
# exactly once and intact, on one and on two queue pairs, 64- and 1500-byte frames.
. "$(dirname "$0")/lib.sh"
require_root
TRAFFIC=$top_builddir/src/tools/vdpa-traffic

# B serves two identical NICs: n0 for the client directly, n1 behind vdpad A (A's backend
# holds n1 open for its whole life, as it would hold /dev/vhost-vdpa-N).
start_vdpad B --device "net:n0,mac=52:54:00:00:0b:01,queues=2" --device "net:n1,mac=52:54:00:00:0b:01,queues=2"
start_vdpad A --device "kernel:hw0,path=$VDPAD_DIR_B/n1"
grep -q "hw0: kernel vDPA device $VDPAD_DIR_B/n1: id 1, 5 queues" "$VDPAD_DIR_A/../vdpad.log" ||
  die "vdpad A did not open B's node as a kernel vDPA device: $(grep hw0 "$VDPAD_DIR_A/../vdpad.log")"
ok "vdpad A's kernel backend opened vdpad B's node (id 1 = net, 5 queues)"

run() {  # what node args...
  local what=$1 node=$2; shift 2
  local out
  out=$("$TRAFFIC" --json "$@" "$node" 2>&1) || die "$what: vdpa-traffic failed: $out"
  python3 - "$what" "$out" <<'PY' || exit 1
import json, sys
what, out = sys.argv[1], json.loads(sys.argv[2])
exp = out["pairs"] * out["reps"]
assert out["result"] == "PASS", out
assert out["lost"] == out["duplicated"] == out["corrupted"] == 0, out
assert out["received"] == out["sent"] > 0, out
assert out["mac"] == "52:54:00:00:0b:01", out
assert not out["relay"] or out["dirty_pages_checked"] > 0, out
print(f"[traffic_client] ok: {what}: {out['sent']} frames of {out['frame_bytes']} B on "
      f"{out['pairs']} pair(s) came back exactly once, intact "
      f"({out['fps_median']/1e6:.2f} Mframes/s median)")
PY
}
for node in "$VDPAD_DIR_B/n0" "$VDPAD_DIR_A/hw0"; do
  case $node in *hw0) what=chained ;; *) what=direct ;; esac
  run "$what, 1 pair, 64 B" "$node" --frames 50000 --size 64 --pairs 1 --reps 2
  run "$what, 2 pairs, 1500 B" "$node" --frames 20000 --size 1500 --pairs 2 --reps 2
  # through the relay, switched on the way a migration does it; every page the device
  # wrote must be in the dirty log the client collects as QEMU does
  run "$what, relay, 2 pairs, 1500 B, dirty log complete" "$node" --frames 20000 --size 1500 \
    --pairs 2 --reps 1 --relay
done

# both nodes are released and reusable; B saw exactly one opener at a time (A's backend)
grep -q "hw0: closed" "$VDPAD_DIR_A/../vdpad.log" || die "vdpad A did not close the client's session"
ok "each client's close reset the device; nodes stay reusable"

#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ring_walker: a few valid rings in its input layout
(see the comment at the top of tests/fuzz/fuzz_ring_walker.c).

Usage: tests/fuzz/gen_ring_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/fuzz_ring_walker)
"""
import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4
EVENT_IDX, F_INDIRECT, HOLE, DRIVER, UNPOP = 1, 2, 4, 8, 16
DATA_IOVA = 0x10000
RO_IOVA = DATA_IOVA + 0x800
WO_IOVA = DATA_IOVA + 0xD00
DATA2_IOVA = 0x11000
TOP_IOVA = 2**64 - 0x100


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def seed(log2num, flags=0, base=0, heads=(), descs=None, used=None, data=b"",
         max_segs=0, batch=0, driver_chains=0):
    num = 1 << log2num
    hdr = struct.pack("<BBHBBBB", log2num, flags, base, max_segs, batch, driver_chains, 0)
    table = bytearray(16 * num)
    for i, d in (descs or {}).items():
        table[16 * i:16 * i + 16] = d
    ring = [0] * num
    for k, h in enumerate(heads):
        ring[(base + k) % num] = h
    avail = struct.pack("<HH", 0, (base + len(heads)) & 0xFFFF)
    avail += struct.pack("<%dH" % num, *ring) + struct.pack("<H", 0)
    used_idx, entries = used or (base, [])
    slots = [(0, 0)] * num
    for k, e in enumerate(entries):
        slots[(base + k) % num] = e
    used_ring = struct.pack("<HH", 0, used_idx & 0xFFFF)
    used_ring += b"".join(struct.pack("<II", i, n) for i, n in slots) + struct.pack("<H", 0)
    return hdr + bytes(table) + avail + used_ring + data


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_ring_walker")
    os.makedirs(out, exist_ok=True)
    seeds = {}

    # two direct chains: readable + writable, then one read-only buffer
    seeds["direct_two_chains"] = seed(3, heads=[0, 2], descs={
        0: desc(DATA_IOVA, 64, NEXT, 1),
        1: desc(DATA_IOVA + 0x100, 32, WRITE),
        2: desc(RO_IOVA, 16),
    })

    # an indirect table in buffer memory (at data offset 0x200), event idx, and a writable
    # buffer that spans the write-only region and data2 (two segments)
    table = (desc(DATA_IOVA, 16, NEXT, 1) + desc(WO_IOVA, 16, WRITE | NEXT, 2)
             + desc(DATA2_IOVA, 32, WRITE))
    data = bytearray(0x300)
    data[0x200:0x200 + len(table)] = table
    seeds["indirect_event_idx"] = seed(4, EVENT_IDX | F_INDIRECT, heads=[0, 1], descs={
        0: desc(DATA_IOVA + 0x200, len(table), INDIRECT),
        1: desc(DATA2_IOVA - 0x10, 0x20, WRITE),
    }, data=bytes(data), batch=1)

    # indexes about to wrap, batches of two, unpop
    seeds["wrap_unpop"] = seed(2, UNPOP, base=65534, heads=[0, 1, 3], descs={
        0: desc(DATA_IOVA, 8),
        1: desc(DATA_IOVA + 8, 8, NEXT, 2),
        2: desc(DATA_IOVA + 0x10, 8, WRITE),
        3: desc(DATA_IOVA + 0x18, 0),
    }, batch=1)

    # a buffer that ends at the last IOVA, and one around the punched hole
    seeds["top_and_hole"] = seed(3, HOLE, heads=[0, 1], descs={
        0: desc(TOP_IOVA, 0x100, WRITE),
        1: desc(DATA_IOVA + 0x3f0, 0x20),
    })

    # driver mode: chains added by the driver side, a used ring returning two of them
    seeds["driver_used"] = seed(3, DRIVER | EVENT_IDX, base=7, heads=[], descs={},
                                used=(9, [(0, 8), (2, 1)]), driver_chains=3)

    # a long chain through every descriptor of a 32-entry ring
    descs = {i: desc(DATA_IOVA + 0x10 * i, 0x10, NEXT, i + 1) for i in range(31)}
    descs[31] = desc(DATA2_IOVA, 0x10, WRITE)
    seeds["long_chain"] = seed(5, heads=[0], descs=descs, max_segs=32)

    for name, blob in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()

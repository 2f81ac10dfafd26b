#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_uapi: a few client sessions in its input layout (see the
comment at the top of tests/fuzz/fuzz_uapi.c).

Usage: tests/fuzz/gen_uapi_seeds.py [OUTDIR]   (default: tests/fuzz/corpus/fuzz_uapi)
"""
import os
import struct
import sys

# operations
TABLE, ANY, WRITE, IOTLB, OWNER, QUEUE, MEM, KICK, REOPEN, START, RESIZE = range(11)
# indexes into fuzz_uapi.c's table[]
GET_VRING_BASE, GET_STATUS, SET_STATUS, GET_CONFIG, SET_CONFIG = 11, 18, 19, 20, 21
# IOTLB message types
UPDATE, INVALIDATE, BATCH_BEGIN, BATCH_END = 2, 3, 5, 6
A, B = 0, 1
NEXT, WR = 1, 2
MEM_PAGES = 64  # fuzz_uapi.c's MEM_SIZE / 4096


def op_owner(who):
    return bytes([OWNER, who])


def op_iotlb(kind, page=0, pages=0, sel=0, perm=3, who=A, version=2):
    return bytes([IOTLB, who, version, kind]) + struct.pack("<H", page) + bytes([pages, sel, perm])


def op_queue(q, log2num, desc_page, avail16, used16, kick, call):
    return bytes([QUEUE, q, log2num, desc_page, avail16, used16, kick, call])


def op_mem(off, data):
    """Writes data at off, in pieces of at most 240 bytes."""
    assert off % 16 == 0
    s = b""
    for at in range(0, len(data), 240):
        piece = data[at:at + 240]
        s += bytes([MEM]) + struct.pack("<H", (off + at) // 16) + bytes([len(piece)]) + piece
    return s


def op_table(index, arg, who=A):
    return bytes([TABLE, index, who]) + arg


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def avail(heads):
    return struct.pack("<HH", 0, len(heads)) + struct.pack("<%dH" % len(heads), *heads)


def net_start(num_log2=4):
    """SET_OWNER, the whole memory mapped at IOVA 0, rx ring at 0x1000, tx at 0x2000."""
    s = op_owner(A)
    s += op_iotlb(BATCH_BEGIN) + op_iotlb(UPDATE, 0, MEM_PAGES, 0, 3) + op_iotlb(BATCH_END)
    s += op_queue(0, num_log2, 1, 16, 32, 0, 2)
    s += op_queue(1, num_log2, 2, 16, 32, 1, 3)
    s += bytes([START, 0x0F])
    return s


def frame():
    return bytes(12) + b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01\x88\xb5" + bytes(range(40))


def seeds():
    out = {}
    # a good exchange: one RX buffer, one broadcast frame, then the ring base
    s = bytes([0]) + net_start()
    s += op_mem(0x1000, desc(0x20000, 2048, WR)) + op_mem(0x1100, avail([0]))
    s += op_mem(0x10000, frame())
    s += op_mem(0x2000, desc(0x10000, len(frame()))) + op_mem(0x2100, avail([0]))
    s += bytes([KICK, 0, KICK, 1])
    s += op_table(GET_VRING_BASE, struct.pack("<II", 1, 0))
    out["exchange"] = s
    # a TX descriptor table that loops: the queue breaks, then a reset
    s = bytes([0]) + net_start()
    s += op_mem(0x2000, b"".join(desc(0x10000, 64, NEXT, (i + 1) % 16) for i in range(16)))
    s += op_mem(0x2100, avail([0, 1, 2, 3]))
    s += bytes([KICK, 1])
    s += op_table(GET_STATUS, b"") + op_table(SET_STATUS, b"\x00")
    s += op_table(GET_VRING_BASE, struct.pack("<II", 1, 0))
    out["loop"] = s
    # the rings invalidated inside a batch while the device runs, then kicked
    s = bytes([0]) + net_start()
    s += op_iotlb(BATCH_BEGIN) + op_iotlb(INVALIDATE, 0, MEM_PAGES)
    s += op_mem(0x2000, desc(0x10000, len(frame()))) + op_mem(0x2100, avail([0]))
    s += bytes([KICK, 1]) + op_iotlb(BATCH_END) + bytes([KICK, 1])
    out["batch_invalidate"] = s
    # the client shrinks its memory under the running device, then kicks
    s = bytes([0]) + net_start()
    s += op_mem(0x1000, desc(0x20000, 2048, WR)) + op_mem(0x1100, avail([0]))
    s += op_mem(0x10000, frame())
    s += op_mem(0x2000, desc(0x10000, len(frame()))) + op_mem(0x2100, avail([0]))
    s += bytes([KICK, 0, KICK, 1, RESIZE, 1, KICK, 1, KICK, 0, RESIZE, 64, KICK, 1])
    out["shrink"] = s
    # ownership: B owns, A is refused, the node is reopened, A owns and reads config
    s = bytes([0]) + op_owner(B) + op_owner(A)
    s += op_table(GET_STATUS, b"", who=A) + op_iotlb(UPDATE, 0, 1, 0, 3, who=A)
    s += bytes([REOPEN]) + op_owner(A)
    # GET_CONFIG is _IOR: no argument bytes; the header is read from the caller (the input)
    s += op_table(GET_CONFIG, b"") + struct.pack("<II", 0, 6)
    # SET_CONFIG: the header is the argument, the payload is read from the caller
    s += op_table(SET_CONFIG, struct.pack("<II", 0, 6)) + bytes(6)
    out["owners"] = s
    # unknown ioctls and malformed writes
    s = bytes([0]) + op_owner(A)
    s += bytes([ANY]) + struct.pack("<I", 0xDEADBEEF) + bytes([A]) + bytes(64)
    s += bytes([ANY]) + struct.pack("<I", 0xC0FFAF99) + bytes([A]) + bytes(64)
    s += bytes([WRITE, 3, A]) + b"\x02\x00\x00"
    s += bytes([WRITE, 40, A]) + struct.pack("<I", 2) + bytes(4) + struct.pack("<QQQBB", 0x100000, 0x1000, 0x7F1200000000, 3, 2) + bytes(6)
    s += op_iotlb(UPDATE, 0x10, 0, 0, 3)  # size 0
    s += op_iotlb(UPDATE, 0x10, 1, 0xF1, 1)  # unshareable, not guest RAM
    s += op_iotlb(UPDATE, 0, 1, 0xF2, 3)  # unshareable at GPA 0
    s += bytes([START, 0x0F])
    out["malformed"] = s
    # blk: a GET_ID request on queue 0
    s = bytes([3]) + op_owner(A) + op_iotlb(UPDATE, 0, MEM_PAGES, 0, 3)
    s += op_queue(0, 4, 1, 16, 32, 0, 2) + bytes([START, 0x0F])
    hdr = struct.pack("<IIQ", 8, 0, 0)  # VIRTIO_BLK_T_GET_ID
    s += op_mem(0x10000, hdr)
    s += op_mem(0x1000, desc(0x10000, 16, NEXT, 1) + desc(0x11000, 20, WR | NEXT, 2) +
                desc(0x12000, 1, WR))
    s += op_mem(0x1100, avail([0])) + bytes([KICK, 0])
    out["blk_get_id"] = s
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_uapi")
    os.makedirs(outdir, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

/* client_net.h — plays QEMU and its guest's virtio-net driver against a session, through
 * the session API only: the calls the uAPI makes for a client's ioctls and IOTLB writes.
 * The rings are the driver side of virtio/split_ring.h; the device is whatever the
 * session routes to (a simulated NIC in the tests, which loops TX back to RX).
 *
 * Layout of the client memory (struct client_mem, at IOVA iova): the RX ring at 0, the
 * TX ring at 16 KiB, then num RX buffers and num TX buffers of CLIENT_NET_BUF bytes from
 * CLIENT_NET_BUFS_OFF. Tests may use the memory from client_net_free_off() on.
 *
 * Threads: the test thread (the device's worker runs concurrently).
 * Ownership: borrows the session and the memory; owns its rings' driver state and the
 * client side of its kick and call eventfds (the session gets duplicates).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "client_mem.h"
#include "core/session.h"
#include "virtio/split_ring.h"

#define CLIENT_NET_RX 0u
#define CLIENT_NET_TX 1u
#define CLIENT_NET_BUF 2048u
#define CLIENT_NET_RING_STRIDE 0x4000u
#define CLIENT_NET_BUFS_OFF 0x10000u
#define CLIENT_NET_FRAME 64u /* Ethernet frame bytes (after the 12-byte net header) */

struct client_vq {
    struct vring_drv vr;
    bool live;   /* vr initialised */
    int kick_fd; /* the client's side */
    int call_fd;
};

struct client_net {
    struct session *s;
    struct client_mem *mem;
    uint64_t iova; /* IOVA of the memory's offset 0 */
    unsigned num;  /* ring size */
    uint64_t features;
    struct client_vq q[2];
    uint32_t next_seq;
};

/* Prepares the client (no session calls yet): eventfds, features VERSION_1,
 * ACCESS_PLATFORM and MAC. num: ring size, at most 256. */
void client_net_init(struct client_net *c, struct session *s, struct client_mem *mem,
                     uint64_t iova, unsigned num);
void client_net_destroy(struct client_net *c);

/* The first offset after the rings and buffers. */
uint64_t client_net_free_off(const struct client_net *c);
/* IOVA of a memory offset. */
uint64_t client_net_iova(const struct client_net *c, uint64_t off);

/* IOTLB UPDATE of the whole memory, read-write. */
int client_net_map(struct client_net *c, GError **error);

/* Driver init as QEMU does it, on a device fresh from reset: ACKNOWLEDGE|DRIVER,
 * SET_FEATURES, FEATURES_OK, per queue (fresh rings) SET_VRING_NUM, _ADDR, _BASE 0,
 * [_KICK, _CALL when with_fds], _ENABLE, then DRIVER_OK. */
int client_net_start(struct client_net *c, bool with_fds, GError **error);

/* Posts n receive buffers and n numbered broadcast frames, and kicks both queues. */
int client_net_send(struct client_net *c, unsigned n, GError **error);

/* Waits up to timeout_ms for n TX completions and n received frames. Returns the number
 * of frames received intact (each sent frame at most once), or -errno when a ring was
 * broken by the device (-EIO) or the data came back wrong. *tx_done gets the TX
 * completions (may be NULL). */
int client_net_collect(struct client_net *c, unsigned n, unsigned timeout_ms,
                       unsigned *tx_done, GError **error);

/* send + collect; returns the frames received intact. */
int client_net_exchange(struct client_net *c, unsigned n, unsigned timeout_ms, GError **error);

/* The device's status through the session. */
uint8_t client_net_status(struct client_net *c);

/* qmp_client.h — a client of QEMU's monitor protocol (QMP) on a unix socket.
 *
 * Connecting reads QEMU's greeting, checks the version (QEMU_MIN_MAJOR.MINOR or newer) and
 * sends qmp_capabilities. Every command then carries a fresh integer "id" and its reply is
 * found by that id; a reply with an id nobody waits for is logged and dropped. Events that
 * arrive meanwhile are queued in arrival order and never dropped: take them with
 * qmp_client_wait_event()/_drain_events(), or have them delivered by the main loop.
 *
 * Two ways to drive it, which may be mixed on one client:
 *  - blocking (tools, tests): qmp_client_execute() and qmp_client_wait_event() poll the
 *    socket themselves until the answer, the timeout or the end of the connection;
 *  - a GLib main loop (the daemon): qmp_client_attach() adds a source that reads without
 *    blocking, delivers events to a callback and completes qmp_client_execute_async().
 *    Callbacks run only from that source's dispatch, never from inside a client call.
 *
 * Errors: calls return 0 or -errno with a GError. Local failures use VDPAD_ERROR with the
 * errno as code (ETIMEDOUT, ECONNRESET when the socket closed, EPROTO for a peer that does
 * not speak QMP...), and name the socket. An error reply from QEMU is -EREMOTEIO with a
 * QMP_ERROR GError: its code is QEMU's error class, its message "Class: desc (command
 * NAME, QMP socket PATH)". Once the socket has closed or broken, every pending and later
 * call fails at once with "QMP socket PATH closed"; nothing waits longer than its timeout.
 *
 * Ownership: arguments passed in are borrowed (the client takes its own references).
 * Results handed out (*result, events from wait/drain) belong to the caller: json_object_put
 * or qmp_event_free them. What callbacks receive is borrowed for the duration of the call;
 * take a reference (json_object_get) to keep it.
 *
 * Threads: a client belongs to one thread: the one that calls it and, once attached, runs
 * its GMainContext. No locks.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "qmp/qmp_json.h"

#define QMP_MIN_QEMU_MAJOR 7
#define QMP_MIN_QEMU_MINOR 2
#define QMP_DEFAULT_TIMEOUT_MS 10000

/* QEMU's error classes (qapi/error.json) as codes of QMP_ERROR. */
#define QMP_ERROR (qmp_error_quark())
GQuark qmp_error_quark(void);
enum qmp_error_class {
    QMP_ERROR_GENERIC,          /* GenericError, and any class this list lacks */
    QMP_ERROR_COMMAND_NOT_FOUND,
    QMP_ERROR_DEVICE_NOT_ACTIVE,
    QMP_ERROR_DEVICE_NOT_FOUND,
    QMP_ERROR_KVM_MISSING_CAP,
};

struct qmp_event {
    char *name;          /* "STOP", "MIGRATION"... */
    json_object *data;   /* the "data" member (the event's reference), or NULL if none */
    gint64 timestamp_us; /* QEMU's wall clock when it emitted the event, or -1 if absent */
};
typedef struct qmp_event qmp_event; /* for g_autoptr */
void qmp_event_free(struct qmp_event *ev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(qmp_event, qmp_event_free)

struct qmp_client;
typedef struct qmp_client qmp_client; /* for g_autoptr */

/* Connects to the QMP socket at path and completes the handshake within timeout_ms.
 * QEMU greets one client at a time: while another is connected, this times out. */
struct qmp_client *qmp_client_connect(const char *path, int timeout_ms, GError **error);
/* The same on an already-connected socket; takes fd (closed on failure too). label names
 * the connection in messages (a path, "fd 5"...). The fd is made non-blocking. */
struct qmp_client *qmp_client_new_from_fd(int fd, const char *label, int timeout_ms,
                                          GError **error);
/* Closes the connection. Async commands still pending are dropped without their callbacks
 * running. May be called from the client's own callbacks. */
void qmp_client_free(struct qmp_client *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(qmp_client, qmp_client_free)

/* The socket path or label given at creation. */
const char *qmp_client_path(const struct qmp_client *c);
/* QEMU's version from the greeting, "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"; the
 * numbers through the optional pointers. */
const char *qmp_client_qemu_version(const struct qmp_client *c, int *major, int *minor,
                                    int *micro);
/* Why the connection ended (NULL while it is up). */
const GError *qmp_client_closed_error(const struct qmp_client *c);

/* Timeout for commands (blocking and async) issued from now on; default
 * QMP_DEFAULT_TIMEOUT_MS. Must be > 0. */
void qmp_client_set_timeout(struct qmp_client *c, int timeout_ms);

/* Runs cmd with args (a JSON object, or NULL for none) and waits for its reply.
 * On success *result (if result is non-NULL) gets the "return" value (NULL for JSON null). */
int qmp_client_execute(struct qmp_client *c, const char *cmd, json_object *args,
                       json_object **result, GError **error);

/* Reads what has arrived, without waiting. Then the oldest queued event (the queue keeps
 * it; valid until the queue changes), or NULL. */
const struct qmp_event *qmp_client_peek_event(struct qmp_client *c);
/* Reads what has arrived, without waiting, and takes every queued event (oldest first;
 * the array frees them). */
GPtrArray *qmp_client_drain_events(struct qmp_client *c);
/* Takes the oldest queued event named name (any event if name is NULL), waiting up to
 * timeout_ms (0: no wait) for one to arrive; other events stay queued in order. Events
 * queued before the socket closed are still returned. NULL with -ETIMEDOUT / the closed
 * error otherwise. */
struct qmp_event *qmp_client_wait_event(struct qmp_client *c, const char *name, int timeout_ms,
                                        GError **error);
/* Reads and queues what arrives during timeout_ms: a sleep that keeps the connection
 * served (and notices its end: then the closed error). */
int qmp_client_pump(struct qmp_client *c, int timeout_ms, GError **error);

/* Main-loop mode. */
typedef void (*qmp_event_fn)(struct qmp_client *c, const struct qmp_event *ev, void *data);
typedef void (*qmp_closed_fn)(struct qmp_client *c, const GError *why, void *data);
/* On success error is NULL and result the "return" value (NULL for JSON null); on failure
 * result is NULL. */
typedef void (*qmp_done_fn)(struct qmp_client *c, json_object *result, const GError *error,
                            void *data);

/* Adds the client's source to ctx (NULL: the global default context). on_event, if set,
 * receives every event in arrival order, interleaved in that order with async completions
 * (a reply is delivered after the events that arrived before it); if NULL, events stay
 * queued for the blocking calls. on_closed, if set, runs once when the connection ends,
 * after the completions it caused. data goes to both. */
void qmp_client_attach(struct qmp_client *c, GMainContext *ctx, qmp_event_fn on_event,
                       qmp_closed_fn on_closed, void *data);
/* Removes the source; undelivered completions stay until the next attach. */
void qmp_client_detach(struct qmp_client *c);
/* Sends cmd now; done runs from the source with the reply, the timeout or the closed error
 * (also when the client is already closed). Needs qmp_client_attach(). data must live
 * until done runs or the client is freed. */
void qmp_client_execute_async(struct qmp_client *c, const char *cmd, json_object *args,
                              qmp_done_fn done, void *data);

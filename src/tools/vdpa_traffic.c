/* vdpa-traffic — a traffic client for any vhost-vdpa node (the kernel's or vdpad's).
 *
 * It opens the node the way DPDK's virtio-user does: memfd memory mapped through IOTLB v2
 * messages, rings and eventfds of its own (the test driver, src/driver/, over the kernel
 * uAPI backend, src/backend/kernel/). It moves sequence-numbered frames through the
 * device's loopback on every queue pair at once and checks each comes back exactly once
 * and intact. Output: one line per repetition and a summary; --json for scripts.
 * Exit: 0 clean, 1 loss/corruption or a device error, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/kernel/kernel_dev.h"
#include "dirty_log/dirty_log.h"
#include "driver/virtio_driver.h"
#include "util/stats.h"

struct options {
    uint64_t frames;
    size_t size;
    unsigned pairs;
    unsigned reps;
    unsigned timeout_ms;
    bool json;
    bool relay;
    uint64_t mem_mb;
    const char *node;
};

/* The dirty log, read and cleared the way QEMU syncs it: a plain read, then an atomic
 * exchange with 0 for every nonzero word; what it finds accumulates in seen. */
struct log_reader {
    uint64_t *log, *seen;
    uint64_t words;
    atomic_bool stop;
    pthread_t thread;
};

static void log_sweep(struct log_reader *lr)
{
    for (uint64_t i = 0; i < lr->words; i++)
        if (__atomic_load_n(&lr->log[i], __ATOMIC_RELAXED))
            lr->seen[i] |= __atomic_exchange_n(&lr->log[i], 0, __ATOMIC_SEQ_CST);
}

static void *log_reader_thread(void *arg)
{
    struct log_reader *lr = arg;

    while (!atomic_load(&lr->stop)) {
        log_sweep(lr);
        g_usleep(500);
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vdpa-traffic [options] NODE\n"
            "  -n, --frames N       frames per queue pair and repetition (default 100000)\n"
            "  -s, --size BYTES     Ethernet frame size, 60..1514 (default 64)\n"
            "  -p, --pairs N        queue pairs to drive at once (default 1)\n"
            "  -r, --reps N         repetitions (default 3)\n"
            "  -t, --timeout-ms MS  give up after MS without progress (default 5000)\n"
            "      --relay          run through vdpad's relay with dirty logging on (as during a\n"
            "                       migration) and check every page the device wrote is logged\n"
            "      --mem-mb N       guest memory (a sparse memfd) mapped into the device\n"
            "                       (default: what the rings and buffers need)\n"
            "      --json           one JSON object on stdout\n"
            "  -h, --help\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "frames", required_argument, NULL, 'n' }, { "size", required_argument, NULL, 's' },
        { "pairs", required_argument, NULL, 'p' },  { "reps", required_argument, NULL, 'r' },
        { "timeout-ms", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
        { "relay", no_argument, NULL, 'R' },
        { "mem-mb", required_argument, NULL, 'M' },
        { "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
    };
    char *end;
    int c;

    *o = (struct options){ .frames = 100000, .size = 64, .pairs = 1, .reps = 3,
                           .timeout_ms = 5000 };
    while ((c = getopt_long(argc, argv, "n:s:p:r:t:h", longopts, NULL)) != -1) {
        unsigned long long v = 0;
        if (optarg) {
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (errno || *end || !*optarg) {
                fprintf(stderr, "vdpa-traffic: '%s' is not a number\n", optarg);
                return -1;
            }
        }
        switch (c) {
        case 'n': o->frames = v; break;
        case 's': o->size = v; break;
        case 'p': o->pairs = (unsigned)v; break;
        case 'r': o->reps = (unsigned)v; break;
        case 't': o->timeout_ms = (unsigned)v; break;
        case 'j': o->json = true; break;
        case 'R': o->relay = true; break;
        case 'M': o->mem_mb = v; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    o->node = argv[optind];
    if (o->frames == 0 || o->size < 60 || o->size > 1514 || o->pairs < 1 || o->pairs > 16 ||
        o->reps < 1 || o->reps > 1000) {
        fprintf(stderr, "vdpa-traffic: frames >= 1, size 60..1514, pairs 1..16, reps 1..1000\n");
        return -1;
    }
    return 0;
}

static void fmt_mac(char out[18], const uint8_t mac[6])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

int main(int argc, char **argv)
{
    struct options o;
    g_autoptr(GError) err = NULL;

    if (parse_options(argc, argv, &o) < 0)
        return 2;
    g_autoptr(vdpa_device) dev = kernel_dev_open("traffic", o.node, &err);
    if (!dev) {
        fprintf(stderr, "vdpa-traffic: %s\n", err->message);
        return 1;
    }
    struct vdrv_config cfg = { .mem_bytes = o.mem_mb << 20 };
    g_autoptr(vdrv) drv = vdrv_new(dev, &cfg, &err);
    if (!drv) {
        fprintf(stderr, "vdpa-traffic: %s: %s\n", o.node, err->message);
        return 1;
    }
    if (o.pairs > vdrv_net_pairs(drv)) {
        fprintf(stderr, "vdpa-traffic: %s offers %u queue pair(s), %u asked\n", o.node,
                vdrv_net_pairs(drv), o.pairs);
        return 1;
    }
    if (o.pairs > 1 && vdrv_net_set_pairs(drv, o.pairs, &err) < 0) {
        fprintf(stderr, "vdpa-traffic: %s: %s\n", o.node, err->message);
        return 1;
    }
    uint8_t mac[6];
    char mac_text[18];
    vdrv_net_mac(drv, mac);
    fmt_mac(mac_text, mac);

    struct log_reader lr = { 0 };
    double switch_in_ms = 0, switch_out_ms = 0;
    if (o.relay) {
        uint64_t iova, size;
        vdrv_guest_memory(drv, &iova, &size);
        lr.words = dirty_log_words_for(iova + size);
        lr.log = g_new0(uint64_t, lr.words);
        lr.seen = g_new0(uint64_t, lr.words);
        pthread_create(&lr.thread, NULL, log_reader_thread, &lr);
        gint64 t0 = g_get_monotonic_time();
        int on = kernel_dev_set_dirty_log(dev, lr.log, true, &err);
        switch_in_ms = (double)(g_get_monotonic_time() - t0) / 1000.0;
        if (on < 0) {
            fprintf(stderr, "vdpa-traffic: %s: %s\n", o.node, err->message);
            return 1;
        }
    }

    g_autofree double *fps = g_new(double, o.reps);
    struct vdrv_net_result total = { 0 };
    g_autofree struct vdrv_net_result *per_pair = g_new0(struct vdrv_net_result, o.pairs);
    int ret = 0;
    unsigned done = 0;
    for (unsigned r = 0; r < o.reps && ret == 0; r++) {
        double seconds = 0;
        ret = vdrv_net_exchange_pairs(drv, o.pairs, o.frames, o.size, mac, o.timeout_ms, per_pair,
                                      &seconds, &err);
        for (unsigned p = 0; p < o.pairs; p++) {
            total.sent += per_pair[p].sent;
            total.received += per_pair[p].received;
            total.lost += per_pair[p].lost;
            total.duplicated += per_pair[p].duplicated;
            total.corrupted += per_pair[p].corrupted;
        }
        fps[r] = seconds > 0 ? (double)o.frames * o.pairs / seconds : 0;
        if (ret == 0)
            done++;
        if (!o.json)
            printf("rep %u: %" G_GUINT64_FORMAT " frames of %zu bytes on %u pair(s) in %.3f s: "
                   "%.3f Mframes/s\n", r + 1, o.frames * o.pairs, o.size, o.pairs, seconds,
                   fps[r] / 1e6);
    }
    if (ret < 0)
        fprintf(stderr, "vdpa-traffic: %s: %s\n", o.node, err->message);

    /* stop logging (vdpad drains the relay and flushes), then check the collected log */
    uint64_t pages_checked = 0;
    bool log_ok = true;
    if (o.relay) {
        g_autoptr(GError) log_err = NULL;
        gint64 t0 = g_get_monotonic_time();
        int off = kernel_dev_set_dirty_log(dev, NULL, false, &log_err);
        switch_out_ms = (double)(g_get_monotonic_time() - t0) / 1000.0;
        if (off < 0) {
            fprintf(stderr, "vdpa-traffic: %s: %s\n", o.node, log_err->message);
            log_ok = false;
        }
        atomic_store(&lr.stop, true);
        pthread_join(lr.thread, NULL);
        log_sweep(&lr);
        g_clear_error(&log_err);
        if (log_ok && vdrv_net_check_dirty_log(drv, lr.seen, lr.words, &pages_checked,
                                               &log_err) < 0) {
            fprintf(stderr, "vdpa-traffic: %s: dirty log: %s\n", o.node, log_err->message);
            log_ok = false;
        }
        g_free(lr.log);
        g_free(lr.seen);
    }

    struct sample_summary sum;
    sample_summarize(fps, done, &sum);
    bool clean = ret == 0 && total.lost == 0 && total.duplicated == 0 && total.corrupted == 0 &&
                 log_ok;
    if (o.json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "node", json_object_new_string(o.node));
        json_object_object_add(j, "mac", json_object_new_string(mac_text));
        json_object_object_add(j, "frame_bytes", json_object_new_int64((int64_t)o.size));
        json_object_object_add(j, "pairs", json_object_new_int((int)o.pairs));
        json_object_object_add(j, "reps", json_object_new_int((int)done));
        json_object_object_add(j, "sent", json_object_new_int64((int64_t)total.sent));
        json_object_object_add(j, "received", json_object_new_int64((int64_t)total.received));
        json_object_object_add(j, "lost", json_object_new_int64((int64_t)total.lost));
        json_object_object_add(j, "duplicated", json_object_new_int64((int64_t)total.duplicated));
        json_object_object_add(j, "corrupted", json_object_new_int64((int64_t)total.corrupted));
        json_object_object_add(j, "fps_median", json_object_new_double(sum.median));
        json_object_object_add(j, "fps_min", json_object_new_double(sum.min));
        json_object_object_add(j, "fps_max", json_object_new_double(sum.max));
        json_object_object_add(j, "relay", json_object_new_boolean(o.relay));
        if (o.relay) {
            json_object_object_add(j, "dirty_pages_checked",
                                   json_object_new_int64((int64_t)pages_checked));
            json_object_object_add(j, "switch_in_ms", json_object_new_double(switch_in_ms));
            json_object_object_add(j, "switch_out_ms", json_object_new_double(switch_out_ms));
        }
        uint64_t gm_iova, gm_size;
        vdrv_guest_memory(drv, &gm_iova, &gm_size);
        json_object_object_add(j, "guest_memory_bytes", json_object_new_int64((int64_t)gm_size));
        json_object_object_add(j, "result", json_object_new_string(clean ? "PASS" : "FAIL"));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        json_object_put(j);
    } else {
        printf("vdpa-traffic %s mac=%s size=%zu pairs=%u sent=%" G_GUINT64_FORMAT
               " received=%" G_GUINT64_FORMAT " lost=%" G_GUINT64_FORMAT " dup=%" G_GUINT64_FORMAT
               " corrupt=%" G_GUINT64_FORMAT " mfps_median=%.3f mfps_min=%.3f mfps_max=%.3f "
               "%s result=%s\n", o.node, mac_text, o.size, o.pairs, total.sent, total.received,
               total.lost, total.duplicated, total.corrupted, sum.median / 1e6, sum.min / 1e6,
               sum.max / 1e6, o.relay ? (log_ok ? "relay=on dirty_log=complete" : "relay=on dirty_log=MISSING")
                                      : "relay=off",
               clean ? "PASS" : "FAIL");
    }
    return clean ? 0 : 1;
}

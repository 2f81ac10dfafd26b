/* bench_sim_net — throughput of the simulated NIC driven by the test driver.
 *
 * For each frame size and number of queue pairs: a fresh sim_net device and driver, the
 * pairs activated with MQ_VQ_PAIRS_SET, one warm-up exchange per pair, then `reps` timed
 * repetitions. In a repetition every pair runs one checked exchange (vdrv_net_exchange:
 * every frame must come back exactly once and intact, or the run fails) in its own thread;
 * all threads start together (a barrier), and the repetition lasts until the last one is
 * done. frames/s = frames of all pairs / that wall time; Gbit/s counts Ethernet frame bytes
 * (no virtio header). The table gives the median and the spread (min..max) of the
 * repetitions and each median's ratio to the first configuration (the baseline).
 *
 * The driver generates and verifies a pattern over every byte of every frame, so the
 * figures include that work on the driver side; the device does one copy per frame.
 *
 * Usage: bench_sim_net [--frames N] [--reps R] [--sizes 64,1500] [--pairs 1,2] [--poll]
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <glib.h>
#include <linux/virtio_net.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "backend/sim/sim.h"
#include "driver/virtio_driver.h"
#include "util/stats.h"

#define MAX_CONFIGS 16
#define MAX_PAIRS 16

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* One repetition: all pairs at once; returns frames/s or a negative value on failure. */
static double run_once(struct vdrv *drv, unsigned pairs, uint64_t frames, size_t len)
{
    g_autoptr(GError) err = NULL;
    double seconds;

    if (vdrv_net_exchange_pairs(drv, pairs, frames, len, mac, 5000, NULL, &seconds, &err) < 0) {
        fprintf(stderr, "bench_sim_net: %s\n", err->message);
        return -1;
    }
    return (double)frames * pairs / seconds;
}

struct result {
    size_t len;
    unsigned pairs;
    double median, min, max;
};

static int bench_config(size_t len, unsigned pairs, uint64_t frames, unsigned reps, bool poll,
                        struct result *res)
{
    g_autoptr(GError) err = NULL;
    struct sim_net_config cfg = { .name = "bench", .queue_pairs = MAX(pairs, 1) };
    struct vdrv_config dcfg = { .poll = poll };
    g_autoptr(vdpa_device) dev = NULL;
    g_autoptr(vdrv) drv = NULL;
    g_autofree double *fps = g_new(double, reps);

    memcpy(cfg.mac, mac, 6);
    dev = sim_net_new(&cfg, &err);
    if (!dev || !(drv = vdrv_new(dev, &dcfg, &err))) {
        fprintf(stderr, "bench_sim_net: setup: %s\n", err->message);
        return -1;
    }
    if (pairs > 1 && vdrv_net_set_pairs(drv, pairs, &err) < 0) {
        fprintf(stderr, "bench_sim_net: %s\n", err->message);
        return -1;
    }
    if (run_once(drv, pairs, MIN(frames / 10 + 1, 20000u), len) < 0) /* warm-up */
        return -1;
    for (unsigned r = 0; r < reps; r++)
        if ((fps[r] = run_once(drv, pairs, frames, len)) < 0)
            return -1;
    struct sample_summary sum;
    sample_summarize(fps, reps, &sum);
    res->len = len;
    res->pairs = pairs;
    res->min = sum.min;
    res->max = sum.max;
    res->median = sum.median;
    return 0;
}

static unsigned parse_list(const char *s, unsigned long *out, unsigned max)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);
    unsigned n = 0;

    for (unsigned i = 0; parts[i] && n < max; i++)
        out[n++] = strtoul(parts[i], NULL, 10);
    return n;
}

static void print_machine(void)
{
    g_autofree char *cpuinfo = NULL;
    struct utsname u;
    const char *model = "?";

    if (g_file_get_contents("/proc/cpuinfo", &cpuinfo, NULL, NULL)) {
        char *m = strstr(cpuinfo, "model name");

        if (m && (m = strchr(m, ':'))) {
            model = m + 2;
            *strchrnul(model, '\n') = '\0';
        }
    }
    uname(&u);
    printf("machine: %ld CPUs online, %s, kernel %s\n", sysconf(_SC_NPROCESSORS_ONLN), model,
           u.release);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "frames", required_argument, NULL, 'f' }, { "reps", required_argument, NULL, 'r' },
        { "sizes", required_argument, NULL, 's' },  { "pairs", required_argument, NULL, 'p' },
        { "poll", no_argument, NULL, 'P' },         { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long sizes[MAX_CONFIGS] = { 64, 1500 }, pairs[MAX_CONFIGS] = { 1, 2 };
    unsigned nsizes = 2, npairs = 2, reps = 5;
    uint64_t frames = 500000;
    bool poll = false;
    struct result res[MAX_CONFIGS * MAX_CONFIGS];
    unsigned nres = 0;
    int c;

    while ((c = getopt_long(argc, argv, "f:r:s:p:Ph", opts, NULL)) != -1) {
        switch (c) {
        case 'f': frames = strtoull(optarg, NULL, 10); break;
        case 'r': reps = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': nsizes = parse_list(optarg, sizes, MAX_CONFIGS); break;
        case 'p': npairs = parse_list(optarg, pairs, MAX_CONFIGS); break;
        case 'P': poll = true; break;
        default:
            fprintf(stderr, "usage: %s [--frames N] [--reps R] [--sizes 64,1500] "
                            "[--pairs 1,2] [--poll]\n", argv[0]);
            return c == 'h' ? 0 : 2;
        }
    }
    if (frames == 0 || reps == 0 || nsizes == 0 || npairs == 0) {
        fprintf(stderr, "bench_sim_net: frames, reps, sizes and pairs must be positive\n");
        return 2;
    }
    for (unsigned p = 0; p < npairs; p++)
        if (pairs[p] < 1 || pairs[p] > MAX_PAIRS) {
            fprintf(stderr, "bench_sim_net: pairs must be 1..%d\n", MAX_PAIRS);
            return 2;
        }

    print_machine();
    printf("method: %" G_GUINT64_FORMAT " frames per pair per repetition, %u repetitions "
           "(+1 warm-up), one driver thread per pair, %s\n\n",
           frames, reps, poll ? "busy-polling" : "waiting on call eventfds");
    printf("%6s %5s %14s %26s %9s %8s\n", "bytes", "pairs", "frames/s", "spread (min..max)",
           "Gbit/s", "ratio");
    for (unsigned s = 0; s < nsizes; s++) {
        for (unsigned p = 0; p < npairs; p++) {
            struct result *r = &res[nres];

            if (bench_config(sizes[s], (unsigned)pairs[p], frames, reps, poll, r) < 0)
                return 1;
            nres++;
            printf("%6zu %5u %14.0f %12.0f..%-12.0f %9.3f %7.2fx\n", r->len, r->pairs,
                   r->median, r->min, r->max, r->median * (double)r->len * 8 / 1e9,
                   r->median / res[0].median);
            fflush(stdout);
        }
    }
    printf("\nbaseline (ratio 1.00x): %zu bytes, %u pair(s)\n", res[0].len, res[0].pairs);
    return 0;
}

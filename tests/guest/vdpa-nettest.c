/* vdpa-nettest — traffic checker run inside the test guest (tests/guest/README.md).
 *
 * Sends sequence-numbered frames of a private ethertype through an interface whose device
 * loops TX back to RX, and checks that every frame comes back exactly once and intact.
 * One flow per thread; each flow has its own AF_PACKET socket, its own sequence space and
 * is pinned to one CPU, so with XPS the guest's virtio_net transmits each flow on its own
 * queue pair.
 *
 * Threads: the main thread parses options, starts the flows, handles signals, prints
 * progress and the summary. Each flow thread owns its struct flow; the main thread only
 * reads the atomic counters while flows run, and everything else after joining them.
 *
 * Built static (gcc -static -O2 -pthread) by tests/guest/build-guest; plain C, no GLib,
 * because it runs in a busybox initramfs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NT_MAGIC 0x56445054u /* "VDPT" */
#define NT_ETH_HLEN 14
/* payload header: magic u32, run id u32, flow u16, payload length u16, seq u64,
 * send time u64 (ns), header checksum u32; all big-endian; the pattern follows */
#define NT_OFF_MAGIC 0
#define NT_OFF_RUN 4
#define NT_OFF_FLOW 8
#define NT_OFF_LEN 10
#define NT_OFF_SEQ 12
#define NT_OFF_TIME 20
#define NT_OFF_CSUM 28
#define NT_HDR_LEN 32
#define NT_MIN_PAYLOAD 46 /* Ethernet minimum: shorter frames may come back padded */
#define NT_MAX_FLOWS 64
/* Per-flow history of sequence numbers: tells a duplicate from a late frame. The send
 * window is kept well below it so a slot is never reused while its frame is unresolved. */
#define NT_HISTORY (1u << 17)
#define NT_MAX_WINDOW (NT_HISTORY / 2)

enum slot_state { SLOT_FREE = 0, SLOT_OUT, SLOT_RECEIVED, SLOT_LOST };

struct options {
    const char *iface;
    uint8_t dst[6];
    bool dst_set;
    uint8_t expect_mac[6];
    bool expect_mac_set;
    uint8_t set_mac[6];
    bool set_mac_set;
    int promisc; /* -1 leave, 0 off, 1 on */
    uint64_t count;
    bool count_set;
    unsigned size_min, size_max;
    unsigned window;
    bool window_set;
    unsigned timeout_ms;
    bool expect_none;
    bool continuous;
    double duration_s;
    unsigned threads;
    uint32_t run_id;
    bool run_id_set;
    uint16_t ethertype;
    unsigned rate; /* frames/s per flow, 0 = as fast as the window allows */
    unsigned progress_ms;
    unsigned max_seconds;
    int set_queues; /* combined channels to configure, 0 = leave alone */
};

struct flow {
    unsigned id;
    int cpu;
    int fd;
    pthread_t thread;
    uint64_t quota; /* frames to send; UINT64_MAX: until told to stop */
    uint64_t next_seq;
    uint64_t oldest;      /* oldest seq neither received nor declared lost */
    uint64_t outstanding; /* frames sent and neither received nor declared lost */
    uint64_t highest_rx;
    bool any_rx;
    uint8_t *state;    /* NT_HISTORY slots, enum slot_state */
    uint64_t *sent_ns; /* NT_HISTORY slots */
    uint8_t *txbuf, *rxbuf;
    uint64_t rtt_min_ns, rtt_max_ns, rtt_sum_ns, rtt_n;
    int error; /* errno of a fatal socket error, 0 if none */
    /* read by the main thread while the flow runs */
    _Atomic uint64_t sent, received, lost_so_far, dup, corrupt, reorder, late, foreign, tx_retry;
};

static struct options opt;
static uint8_t own_mac[6];
static atomic_int stop_sending; /* first SIGINT/SIGTERM, end of duration */
static atomic_int abort_now;    /* second signal or the deadline: stop without draining */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* splitmix64 finaliser: spreads (run, flow, seq) into a pattern seed and a size choice */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t frame_key(unsigned flow, uint64_t seq)
{
    return mix64(seq ^ ((uint64_t)flow << 48) ^ ((uint64_t)opt.run_id << 16));
}

static unsigned payload_len_for(unsigned flow, uint64_t seq)
{
    unsigned span = opt.size_max - opt.size_min + 1;
    return opt.size_min + (unsigned)(frame_key(flow, seq) % span);
}

/* The bytes after the header, derived from (run, flow, seq): a flipped bit anywhere shows. */
static void fill_pattern(uint8_t *p, size_t n, uint64_t key)
{
    uint32_t x = (uint32_t)(key >> 32) | 1u;
    for (size_t i = 0; i < n; i++) {
        if ((i & 3) == 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
        }
        p[i] = (uint8_t)(x >> ((i & 3) * 8));
    }
}

static bool pattern_ok(const uint8_t *p, size_t n, uint64_t key)
{
    uint32_t x = (uint32_t)(key >> 32) | 1u;
    for (size_t i = 0; i < n; i++) {
        if ((i & 3) == 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
        }
        if (p[i] != (uint8_t)(x >> ((i & 3) * 8)))
            return false;
    }
    return true;
}

static void fmt_mac(char out[18], const uint8_t m[6])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static bool parse_mac(const char *s, uint8_t m[6])
{
    unsigned v[6];
    char tail;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
        return false;
    for (int i = 0; i < 6; i++) {
        if (v[i] > 0xff)
            return false;
        m[i] = (uint8_t)v[i];
    }
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Setup failures: one NETTEST-ERROR line, exit 2 (traffic failures exit 1). */
static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("NETTEST-ERROR ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(2);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: vdpa-nettest [options]\n"
        "  -i, --iface NAME       interface (default eth0)\n"
        "      --set-mac MAC      first set the interface's MAC (virtio_net: control queue)\n"
        "      --promisc on|off   first set promiscuous mode (virtio_net: control queue)\n"
        "      --expect-mac MAC   fail unless the interface has this MAC\n"
        "      --dst MAC          destination MAC (default: the interface's own MAC)\n"
        "  -n, --count N          frames to send in total (default 1000; in --continuous: stop after N)\n"
        "  -s, --size MIN[-MAX]   payload bytes per frame, %u..MTU (default 64-1500)\n"
        "  -w, --window W         max frames in flight per flow (default 32)\n"
        "  -t, --timeout-ms T     a frame not back after T ms is lost (default 2000)\n"
        "      --expect-none      pass only if no frame comes back (MAC filter tests)\n"
        "  -c, --continuous       run until --duration, --count or SIGINT/SIGTERM, with progress lines\n"
        "  -d, --duration S       seconds of sending in --continuous mode\n"
        "  -T, --threads N        flows, one thread each, pinned to CPU (id mod CPUs) (default 1)\n"
        "      --rate R           frames/s per flow (default: as fast as the window allows)\n"
        "      --progress-ms MS   progress line interval in --continuous mode (default 1000)\n"
        "      --queues N         set the interface's combined channels to N first (ethtool -L)\n"
        "      --run-id ID        run id carried in every frame (default: random)\n"
        "      --ethertype X      ethertype (default 0x88b5)\n"
        "      --max-seconds S    hard limit on the whole run (default: 300, or duration + 60)\n"
        "  -h, --help\n",
        NT_MIN_PAYLOAD);
}

static void parse_options(int argc, char **argv)
{
    enum { O_EXPECT_MAC = 256, O_SET_MAC, O_PROMISC, O_DST, O_EXPECT_NONE, O_RATE, O_PROGRESS, O_QUEUES, O_RUN_ID,
           O_ETHERTYPE, O_MAX_SECONDS };
    static const struct option longopts[] = {
        { "iface", required_argument, NULL, 'i' },
        { "expect-mac", required_argument, NULL, O_EXPECT_MAC },
        { "set-mac", required_argument, NULL, O_SET_MAC },
        { "promisc", required_argument, NULL, O_PROMISC },
        { "dst", required_argument, NULL, O_DST },
        { "count", required_argument, NULL, 'n' },
        { "size", required_argument, NULL, 's' },
        { "window", required_argument, NULL, 'w' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "expect-none", no_argument, NULL, O_EXPECT_NONE },
        { "continuous", no_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 'T' },
        { "rate", required_argument, NULL, O_RATE },
        { "progress-ms", required_argument, NULL, O_PROGRESS },
        { "queues", required_argument, NULL, O_QUEUES },
        { "run-id", required_argument, NULL, O_RUN_ID },
        { "ethertype", required_argument, NULL, O_ETHERTYPE },
        { "max-seconds", required_argument, NULL, O_MAX_SECONDS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    unsigned u;
    uint64_t v;
    char *end;
    int c;

    opt = (struct options){ .iface = "eth0", .count = 1000, .size_min = 64, .size_max = 1500,
                            .window = 32, .timeout_ms = 2000, .threads = 1,
                            .ethertype = 0x88b5, .progress_ms = 1000, .promisc = -1 };
    while ((c = getopt_long(argc, argv, "i:n:s:w:t:cd:T:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': opt.iface = optarg; break;
        case O_PROMISC:
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                die("--promisc takes on or off, not '%s'", optarg);
            opt.promisc = !strcmp(optarg, "on");
            break;
        case O_SET_MAC:
            if (!parse_mac(optarg, opt.set_mac))
                die("bad --set-mac '%s'", optarg);
            opt.set_mac_set = true;
            break;
        case O_EXPECT_MAC:
            if (!parse_mac(optarg, opt.expect_mac))
                die("bad --expect-mac '%s'", optarg);
            opt.expect_mac_set = true;
            break;
        case O_DST:
            if (!parse_mac(optarg, opt.dst))
                die("bad --dst '%s'", optarg);
            opt.dst_set = true;
            break;
        case 'n':
            if (!parse_u64(optarg, &opt.count) || opt.count == 0)
                die("bad --count '%s'", optarg);
            opt.count_set = true;
            break;
        case 's': {
            unsigned long a, b;
            errno = 0;
            a = strtoul(optarg, &end, 10);
            b = a;
            if (*end == '-')
                b = strtoul(end + 1, &end, 10);
            if (errno || *end || a < NT_MIN_PAYLOAD || b < a || b > 65535)
                die("bad --size '%s' (MIN[-MAX], %u <= MIN <= MAX)", optarg, NT_MIN_PAYLOAD);
            opt.size_min = (unsigned)a;
            opt.size_max = (unsigned)b;
            break;
        }
        case 'w':
            if (!parse_uint(optarg, NT_MAX_WINDOW, &opt.window) || opt.window == 0)
                die("bad --window '%s' (1..%u)", optarg, NT_MAX_WINDOW);
            opt.window_set = true;
            break;
        case 't':
            if (!parse_uint(optarg, 3600000, &opt.timeout_ms) || opt.timeout_ms == 0)
                die("bad --timeout-ms '%s'", optarg);
            break;
        case O_EXPECT_NONE: opt.expect_none = true; break;
        case 'c': opt.continuous = true; break;
        case 'd':
            opt.duration_s = strtod(optarg, &end);
            if (*end || !(opt.duration_s > 0) || opt.duration_s > 864000)
                die("bad --duration '%s'", optarg);
            break;
        case 'T':
            if (!parse_uint(optarg, NT_MAX_FLOWS, &opt.threads) || opt.threads == 0)
                die("bad --threads '%s' (1..%d)", optarg, NT_MAX_FLOWS);
            break;
        case O_RATE:
            if (!parse_uint(optarg, 10000000, &opt.rate))
                die("bad --rate '%s'", optarg);
            break;
        case O_PROGRESS:
            if (!parse_uint(optarg, 3600000, &opt.progress_ms) || opt.progress_ms < 10)
                die("bad --progress-ms '%s'", optarg);
            break;
        case O_QUEUES:
            if (!parse_uint(optarg, 1024, &u) || u == 0)
                die("bad --queues '%s'", optarg);
            opt.set_queues = (int)u;
            break;
        case O_RUN_ID:
            if (!parse_u64(optarg, &v) || v > UINT32_MAX)
                die("bad --run-id '%s'", optarg);
            opt.run_id = (uint32_t)v;
            opt.run_id_set = true;
            break;
        case O_ETHERTYPE:
            if (!parse_u64(optarg, &v) || v < 0x600 || v > 0xffff)
                die("bad --ethertype '%s' (0x600..0xffff)", optarg);
            opt.ethertype = (uint16_t)v;
            break;
        case O_MAX_SECONDS:
            if (!parse_uint(optarg, 864000, &opt.max_seconds) || opt.max_seconds == 0)
                die("bad --max-seconds '%s'", optarg);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc)
        die("unexpected argument '%s'", argv[optind]);
    if (opt.continuous && !opt.count_set)
        opt.count = UINT64_MAX;
    if (opt.duration_s > 0 && !opt.continuous)
        die("--duration needs --continuous");
    if (!opt.continuous && opt.count < opt.threads)
        die("--count %" PRIu64 " is less than --threads %u", opt.count, opt.threads);
    /* Nothing comes back in --expect-none, so a window would only pace sending by the
     * timeout; send freely unless asked otherwise. */
    if (opt.expect_none && !opt.window_set)
        opt.window = NT_MAX_WINDOW;
    if (!opt.max_seconds)
        opt.max_seconds = opt.duration_s > 0 ? (unsigned)opt.duration_s + 60
                          : opt.continuous   ? 3600
                                             : 300;
    if (!opt.run_id_set)
        opt.run_id = (uint32_t)mix64(now_ns() ^ ((uint64_t)getpid() << 32));
}

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_exchange(&stop_sending, 1))
        atomic_store(&abort_now, 1);
}

/* --- interface --------------------------------------------------------------------- */

struct iface_info {
    int ifindex;
    unsigned mtu;
    unsigned flags;
};

static int ifreq_ioctl(int fd, unsigned long req, struct ifreq *ifr)
{
    memset(ifr, 0, sizeof(*ifr));
    snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", opt.iface);
    return ioctl(fd, req, ifr);
}

static struct iface_info read_iface(int fd)
{
    struct iface_info info = { 0 };
    struct ifreq ifr;

    if (strlen(opt.iface) >= IFNAMSIZ)
        die("interface name '%s' too long", opt.iface);
    if (ifreq_ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
        die("no interface %s: %s", opt.iface, strerror(errno));
    info.ifindex = ifr.ifr_ifindex;
    if (ifreq_ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        die("SIOCGIFHWADDR %s: %s", opt.iface, strerror(errno));
    if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */)
        die("%s is not Ethernet (hw type %u)", opt.iface, ifr.ifr_hwaddr.sa_family);
    memcpy(own_mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ifreq_ioctl(fd, SIOCGIFMTU, &ifr) < 0)
        die("SIOCGIFMTU %s: %s", opt.iface, strerror(errno));
    info.mtu = (unsigned)ifr.ifr_mtu;
    /* the link may come up a moment after `ip link set up`; wait for it, boundedly */
    for (int i = 0; i < 100; i++) {
        if (ifreq_ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
            die("SIOCGIFFLAGS %s: %s", opt.iface, strerror(errno));
        info.flags = (unsigned)(unsigned short)ifr.ifr_flags;
        if ((info.flags & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING))
            break;
        usleep(50000);
    }
    if (!(info.flags & IFF_UP))
        die("%s is down", opt.iface);
    if (!(info.flags & IFF_RUNNING))
        die("%s has no carrier after 5 s", opt.iface);
    return info;
}

static int ethtool(int fd, void *data)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt.iface);
    ifr.ifr_data = data;
    return ioctl(fd, SIOCETHTOOL, &ifr);
}

/* Per-queue packet counters from the driver's ethtool statistics (virtio_net names them
 * tx_queue_<i>_packets / rx_queue_<i>_packets); they show which queues carried traffic. */
struct queue_stats {
    unsigned n_stats;
    int tx_idx[NT_MAX_FLOWS], rx_idx[NT_MAX_FLOWS]; /* stat index per queue, -1 if none */
    unsigned n_queues;
    uint64_t *values;
};

static bool queue_stats_init(int fd, struct queue_stats *qs)
{
    struct ethtool_drvinfo drv = { .cmd = ETHTOOL_GDRVINFO };
    struct ethtool_gstrings *strs;

    memset(qs, 0, sizeof(*qs));
    for (int i = 0; i < NT_MAX_FLOWS; i++)
        qs->tx_idx[i] = qs->rx_idx[i] = -1;
    if (ethtool(fd, &drv) < 0 || drv.n_stats == 0 || drv.n_stats > 100000)
        return false;
    strs = calloc(1, sizeof(*strs) + (size_t)drv.n_stats * ETH_GSTRING_LEN);
    if (!strs)
        return false;
    strs->cmd = ETHTOOL_GSTRINGS;
    strs->string_set = ETH_SS_STATS;
    strs->len = drv.n_stats;
    if (ethtool(fd, strs) < 0) {
        free(strs);
        return false;
    }
    for (unsigned i = 0; i < strs->len; i++) {
        char name[ETH_GSTRING_LEN + 1];
        unsigned q;
        char dir[3];
        int used = 0;
        memcpy(name, strs->data + (size_t)i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
        name[ETH_GSTRING_LEN] = 0;
        if (sscanf(name, "%2[rtx]_queue_%u_packets%n", dir, &q, &used) == 2 && used &&
            name[used] == 0 && q < NT_MAX_FLOWS) {
            if (!strcmp(dir, "tx"))
                qs->tx_idx[q] = (int)i;
            else if (!strcmp(dir, "rx"))
                qs->rx_idx[q] = (int)i;
            if (q + 1 > qs->n_queues)
                qs->n_queues = q + 1;
        }
    }
    free(strs);
    qs->n_stats = drv.n_stats;
    return qs->n_queues > 0;
}

static uint64_t *queue_stats_read(int fd, const struct queue_stats *qs)
{
    struct ethtool_stats *st = calloc(1, sizeof(*st) + (size_t)qs->n_stats * sizeof(uint64_t));
    uint64_t *v;
    if (!st)
        return NULL;
    st->cmd = ETHTOOL_GSTATS;
    st->n_stats = qs->n_stats;
    if (ethtool(fd, st) < 0 || st->n_stats != qs->n_stats) {
        free(st);
        return NULL;
    }
    v = malloc((size_t)qs->n_stats * sizeof(uint64_t));
    if (v)
        memcpy(v, st->data, (size_t)qs->n_stats * sizeof(uint64_t));
    free(st);
    return v;
}

static void print_queue_deltas(const struct queue_stats *qs, const uint64_t *before,
                               const uint64_t *after)
{
    printf("NETTEST-QUEUES");
    for (int pass = 0; pass < 2; pass++) {
        const int *idx = pass ? qs->rx_idx : qs->tx_idx;
        printf(" %s=", pass ? "rx" : "tx");
        for (unsigned q = 0; q < qs->n_queues; q++) {
            if (idx[q] < 0)
                continue;
            printf("%sq%u:%" PRIu64, q ? "," : "", q, after[idx[q]] - before[idx[q]]);
        }
    }
    printf("\n");
}

static void set_channels(int fd, unsigned n)
{
    struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
    if (ethtool(fd, &ch) < 0)
        die("%s: ETHTOOL_GCHANNELS: %s", opt.iface, strerror(errno));
    if (n > ch.max_combined)
        die("%s: --queues %u exceeds the device's %u queue pairs", opt.iface, n, ch.max_combined);
    if (ch.combined_count == n)
        return;
    ch.cmd = ETHTOOL_SCHANNELS;
    ch.combined_count = n;
    if (ethtool(fd, &ch) < 0)
        die("%s: ETHTOOL_SCHANNELS combined=%u: %s", opt.iface, n, strerror(errno));
}

static void channels(int fd, unsigned *cur, unsigned *max)
{
    struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
    *cur = *max = 0;
    if (ethtool(fd, &ch) == 0) {
        *cur = ch.combined_count;
        *max = ch.max_combined;
    }
}

/* --- flows ------------------------------------------------------------------------- */

/* Socket for one flow: only this interface and ethertype, and (by a classic BPF filter)
 * only our frames of this flow plus anything not carrying our magic, so N flows do not
 * each wake up for every frame. The filter goes on before bind so nothing slips past it. */
static int open_flow_socket(const struct flow *f, int ifindex)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NT_ETH_HLEN + NT_OFF_MAGIC),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NT_MAGIC, 0, 2),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, NT_ETH_HLEN + NT_OFF_FLOW),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, f->id, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0x40000),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(opt.ethertype),
                               .sll_ifindex = ifindex };
    int rcvbuf = 4 << 20;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket(AF_PACKET): %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
        die("flow %u: SO_ATTACH_FILTER: %s", f->id, strerror(errno));
    /* room for a window of full-size frames; FORCE needs CAP_NET_ADMIN, plain may be capped */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        die("flow %u: bind to %s: %s", f->id, opt.iface, strerror(errno));
    return fd;
}

static void build_frame(struct flow *f, uint64_t seq, uint64_t t, unsigned *frame_len)
{
    uint8_t *e = f->txbuf, *p = e + NT_ETH_HLEN;
    unsigned len = payload_len_for(f->id, seq);

    memcpy(e, opt.dst, 6);
    memcpy(e + 6, own_mac, 6);
    put16(e + 12, opt.ethertype);
    put32(p + NT_OFF_MAGIC, NT_MAGIC);
    put32(p + NT_OFF_RUN, opt.run_id);
    put16(p + NT_OFF_FLOW, (uint16_t)f->id);
    put16(p + NT_OFF_LEN, (uint16_t)len);
    put64(p + NT_OFF_SEQ, seq);
    put64(p + NT_OFF_TIME, t);
    put32(p + NT_OFF_CSUM, fnv1a(p, NT_OFF_CSUM));
    fill_pattern(p + NT_HDR_LEN, len - NT_HDR_LEN, frame_key(f->id, seq));
    *frame_len = NT_ETH_HLEN + len;
}

/* Account one received frame of this socket. */
static void account_rx(struct flow *f, const uint8_t *e, size_t n, uint64_t t)
{
    const uint8_t *p = e + NT_ETH_HLEN;
    uint64_t seq;
    unsigned len;
    size_t slot;

    if (n < NT_ETH_HLEN + NT_HDR_LEN || get32(p + NT_OFF_MAGIC) != NT_MAGIC) {
        /* every flow's filter passes these; let flow 0 alone count them */
        if (f->id == 0)
            f->corrupt++;
        return;
    }
    if (get32(p + NT_OFF_CSUM) != fnv1a(p, NT_OFF_CSUM)) {
        f->corrupt++;
        return;
    }
    if (get32(p + NT_OFF_RUN) != opt.run_id) {
        f->foreign++; /* intact frame of an earlier run, e.g. still queued from a previous step */
        return;
    }
    if (get16(p + NT_OFF_FLOW) != f->id) {
        f->corrupt++; /* the filter lets no such frame through */
        return;
    }
    seq = get64(p + NT_OFF_SEQ);
    len = get16(p + NT_OFF_LEN);
    if (seq >= f->next_seq || n != NT_ETH_HLEN + len || len != payload_len_for(f->id, seq) ||
        !pattern_ok(p + NT_HDR_LEN, len - NT_HDR_LEN, frame_key(f->id, seq))) {
        f->corrupt++;
        return;
    }
    if (f->next_seq - seq > NT_HISTORY) {
        f->dup++; /* older than the history: cannot tell, and no sane path delays that long */
        return;
    }
    slot = seq & (NT_HISTORY - 1);
    switch (f->state[slot]) {
    case SLOT_RECEIVED:
        f->dup++;
        return;
    case SLOT_LOST:
        f->late++;
        f->lost_so_far--;
        break;
    case SLOT_OUT:
        f->outstanding--;
        break;
    default:
        f->corrupt++;
        return;
    }
    f->state[slot] = SLOT_RECEIVED;
    f->received++;
    if (f->any_rx && seq < f->highest_rx)
        f->reorder++;
    if (!f->any_rx || seq > f->highest_rx)
        f->highest_rx = seq;
    f->any_rx = true;

    uint64_t rtt = t - f->sent_ns[slot];
    if (f->rtt_n == 0 || rtt < f->rtt_min_ns)
        f->rtt_min_ns = rtt;
    if (rtt > f->rtt_max_ns)
        f->rtt_max_ns = rtt;
    f->rtt_sum_ns += rtt;
    f->rtt_n++;
}

static void drain_rx(struct flow *f)
{
    for (;;) {
        struct sockaddr_ll from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(f->fd, f->rxbuf, 65536, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                f->error = errno;
            return;
        }
        if (from.sll_pkttype == PACKET_OUTGOING)
            continue;
        account_rx(f, f->rxbuf, n > 65536 ? 65536 : (size_t)n, now_ns());
    }
}

/* Declare lost every frame at the old end that has been out longer than the timeout. */
static void resolve_old(struct flow *f, uint64_t t)
{
    uint64_t timeout = (uint64_t)opt.timeout_ms * 1000000u;
    while (f->oldest < f->next_seq) {
        size_t slot = f->oldest & (NT_HISTORY - 1);
        if (f->state[slot] == SLOT_OUT) {
            if (t - f->sent_ns[slot] < timeout)
                break;
            f->state[slot] = SLOT_LOST;
            f->lost_so_far++;
            f->outstanding--;
        }
        f->oldest++;
    }
}

/* Wait for a frame or until the oldest frame times out, at most 100 ms, so flags are seen. */
static void wait_rx(struct flow *f, uint64_t t, uint64_t until)
{
    struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
    uint64_t timeout = (uint64_t)opt.timeout_ms * 1000000u;
    uint64_t deadline = t + 100000000u;
    int ms;

    if (f->oldest < f->next_seq) {
        uint64_t due = f->sent_ns[f->oldest & (NT_HISTORY - 1)] + timeout;
        if (due < deadline)
            deadline = due;
    }
    if (until && until < deadline)
        deadline = until;
    ms = deadline > t ? (int)((deadline - t + 999999) / 1000000) : 0;
    (void)poll(&pfd, 1, ms);
}

static void *flow_main(void *arg)
{
    struct flow *f = arg;
    uint64_t start = now_ns(), next_send_at = start;
    uint64_t interval = opt.rate ? 1000000000u / opt.rate : 0;
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(f->cpu, &set);
    /* XPS maps the sending CPU to a TX queue; without pinning flows would share queues */
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
        f->cpu = -1;

    while (!atomic_load(&abort_now) && !f->error) {
        uint64_t t = now_ns();
        unsigned frame_len;

        drain_rx(f);
        resolve_old(f, t);
        if (atomic_load(&stop_sending) || f->next_seq >= f->quota) {
            if (f->oldest >= f->next_seq)
                break; /* everything sent is back or declared lost */
            wait_rx(f, t, 0);
            continue;
        }
        /* the window counts frames in flight; a lost frame holds its slot until it times
         * out, and the history bounds how far the sender may run ahead of the oldest */
        if (f->outstanding >= opt.window || f->next_seq - f->oldest >= NT_HISTORY - 1) {
            wait_rx(f, t, 0);
            continue;
        }
        if (interval && t < next_send_at) {
            wait_rx(f, t, next_send_at);
            continue;
        }
        build_frame(f, f->next_seq, t, &frame_len);
        if (send(f->fd, f->txbuf, frame_len, MSG_DONTWAIT) != (ssize_t)frame_len) {
            if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
                /* TX ring and qdisc full: the guest is slower than we are; back off */
                struct pollfd pfd = { .fd = f->fd, .events = POLLIN | POLLOUT };
                f->tx_retry++;
                (void)poll(&pfd, 1, 1);
                continue;
            }
            f->error = errno;
            break;
        }
        size_t slot = f->next_seq & (NT_HISTORY - 1);
        f->state[slot] = SLOT_OUT;
        f->sent_ns[slot] = t;
        f->outstanding++;
        f->next_seq++;
        f->sent++;
        /* pace by schedule, catching up after a late wake-up, but not by a burst after a
         * long stall (e.g. while the VM was paused) */
        next_send_at += interval;
        if (next_send_at + 100000000u < t)
            next_send_at = t;
    }
    return NULL;
}

/* --- main -------------------------------------------------------------------------- */

struct totals {
    uint64_t sent, received, lost, lost_so_far, dup, corrupt, reorder, late, foreign, tx_retry;
};

static struct totals sum_flows(struct flow *flows, unsigned n)
{
    struct totals s = { 0 };
    for (unsigned i = 0; i < n; i++) {
        struct flow *f = &flows[i];
        uint64_t sent = atomic_load(&f->sent), rcv = atomic_load(&f->received);
        s.sent += sent;
        s.received += rcv;
        s.lost += sent - rcv;
        s.lost_so_far += atomic_load(&f->lost_so_far);
        s.dup += atomic_load(&f->dup);
        s.corrupt += atomic_load(&f->corrupt);
        s.reorder += atomic_load(&f->reorder);
        s.late += atomic_load(&f->late);
        s.foreign += atomic_load(&f->foreign);
        s.tx_retry += atomic_load(&f->tx_retry);
    }
    return s;
}

int main(int argc, char **argv)
{
    static struct flow flows[NT_MAX_FLOWS];
    struct queue_stats qs;
    struct iface_info info;
    struct sigaction sa = { .sa_handler = on_signal };
    sigset_t block, old;
    uint64_t *q_before = NULL, *q_after = NULL;
    char mac[18], dst[18];
    const char *mode, *reason = NULL;
    bool have_qs, pass;
    int ctl, ncpu;
    unsigned qcur, qmax;

    setvbuf(stdout, NULL, _IOLBF, 0);
    parse_options(argc, argv);

    ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (ctl < 0)
        die("socket(AF_INET): %s", strerror(errno));
    if (opt.set_mac_set) {
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt.iface);
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        memcpy(ifr.ifr_hwaddr.sa_data, opt.set_mac, 6);
        if (ioctl(ctl, SIOCSIFHWADDR, &ifr) < 0)
            die("setting the MAC of %s: %s", opt.iface, strerror(errno));
    }
    if (opt.promisc >= 0) {
        /* IFF_PROMISC through the flags: virtio_net sends VIRTIO_NET_CTRL_RX_PROMISC */
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt.iface);
        if (ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0)
            die("reading the flags of %s: %s", opt.iface, strerror(errno));
        ifr.ifr_flags = opt.promisc ? (ifr.ifr_flags | IFF_PROMISC) : (ifr.ifr_flags & ~IFF_PROMISC);
        if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0)
            die("setting promiscuous mode of %s: %s", opt.iface, strerror(errno));
    }
    info = read_iface(ctl);
    if (opt.size_max > info.mtu)
        die("--size max %u exceeds the MTU %u of %s", opt.size_max, info.mtu, opt.iface);
    fmt_mac(mac, own_mac);
    if (opt.expect_mac_set && memcmp(opt.expect_mac, own_mac, 6)) {
        char want[18];
        fmt_mac(want, opt.expect_mac);
        die("%s has MAC %s, expected %s", opt.iface, mac, want);
    }
    if (!opt.dst_set) {
        memcpy(opt.dst, own_mac, 6);
        /* --expect-none without --dst: a unicast MAC one bit away from ours */
        if (opt.expect_none)
            opt.dst[5] ^= 0x01;
    }
    fmt_mac(dst, opt.dst);
    if (opt.set_queues)
        set_channels(ctl, (unsigned)opt.set_queues);
    channels(ctl, &qcur, &qmax);
    ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    mode = opt.expect_none ? "expect-none" : opt.continuous ? "continuous" : "oneshot";
    printf("NETTEST-IF iface=%s ifindex=%d mac=%s mtu=%u queues=%u/%u cpus=%d dst=%s "
           "mode=%s threads=%u run_id=0x%08x\n",
           opt.iface, info.ifindex, mac, info.mtu, qcur, qmax, ncpu, dst, mode, opt.threads,
           opt.run_id);

    have_qs = queue_stats_init(ctl, &qs);
    if (have_qs)
        q_before = queue_stats_read(ctl, &qs);

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* flows inherit a mask with the signals blocked, so the handler runs on this thread */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    for (unsigned i = 0; i < opt.threads; i++) {
        struct flow *f = &flows[i];
        f->id = i;
        f->cpu = (int)(i % (unsigned)ncpu);
        f->quota = opt.count == UINT64_MAX
                       ? UINT64_MAX
                       : opt.count / opt.threads + (i < opt.count % opt.threads ? 1 : 0);
        f->state = calloc(NT_HISTORY, 1);
        f->sent_ns = calloc(NT_HISTORY, sizeof(uint64_t));
        f->txbuf = calloc(1, 65536);
        f->rxbuf = calloc(1, 65536);
        if (!f->state || !f->sent_ns || !f->txbuf || !f->rxbuf)
            die("out of memory");
        f->fd = open_flow_socket(f, info.ifindex);
    }
    uint64_t start = now_ns();
    uint64_t send_until = opt.duration_s > 0 ? start + (uint64_t)(opt.duration_s * 1e9) : 0;
    uint64_t hard_deadline = start + (uint64_t)opt.max_seconds * 1000000000u;
    for (unsigned i = 0; i < opt.threads; i++) {
        int err = pthread_create(&flows[i].thread, NULL, flow_main, &flows[i]);
        if (err)
            die("pthread_create: %s", strerror(err));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    /* supervise: progress lines, end of duration, the hard deadline */
    uint64_t next_progress = start + (uint64_t)opt.progress_ms * 1000000u;
    uint64_t last_rx = 0, last_t = start;
    bool joined[NT_MAX_FLOWS] = { false };
    for (;;) {
        bool running = false;
        for (unsigned i = 0; i < opt.threads; i++) {
            if (!joined[i] && pthread_tryjoin_np(flows[i].thread, NULL) == 0)
                joined[i] = true;
            running |= !joined[i];
        }
        if (!running)
            break;
        uint64_t t = now_ns();
        if (send_until && t >= send_until)
            atomic_store(&stop_sending, 1);
        if (t >= hard_deadline && !atomic_exchange(&abort_now, 1))
            reason = "deadline";
        if (opt.continuous && t >= next_progress) {
            struct totals s = sum_flows(flows, opt.threads);
            double dt = (double)(t - last_t) / 1e9;
            printf("NETTEST-PROGRESS t=%.1f sent=%" PRIu64 " received=%" PRIu64
                   " lost_so_far=%" PRIu64 " dup=%" PRIu64 " corrupt=%" PRIu64
                   " reorder=%" PRIu64 " late=%" PRIu64 " fps=%.0f\n",
                   (double)(t - start) / 1e9, s.sent, s.received, s.lost_so_far, s.dup,
                   s.corrupt, s.reorder, s.late, dt > 0 ? (double)(s.received - last_rx) / dt : 0);
            last_rx = s.received;
            last_t = t;
            next_progress += (uint64_t)opt.progress_ms * 1000000u;
            if (next_progress <= t)
                next_progress = t + (uint64_t)opt.progress_ms * 1000000u;
        }
        struct timespec ts = { 0, 20000000 };
        nanosleep(&ts, NULL);
    }
    double elapsed = (double)(now_ns() - start) / 1e9;

    if (have_qs && q_before)
        q_after = queue_stats_read(ctl, &qs);

    uint64_t rtt_min = UINT64_MAX, rtt_max = 0, rtt_sum = 0, rtt_n = 0;
    for (unsigned i = 0; i < opt.threads; i++) {
        struct flow *f = &flows[i];
        printf("NETTEST-THREAD id=%u cpu=%d sent=%" PRIu64 " received=%" PRIu64
               " lost=%" PRIu64 " dup=%" PRIu64 " corrupt=%" PRIu64 " reorder=%" PRIu64
               " late=%" PRIu64 " foreign=%" PRIu64 " tx_retry=%" PRIu64 "\n",
               f->id, f->cpu, (uint64_t)f->sent, (uint64_t)f->received,
               (uint64_t)(f->sent - f->received), (uint64_t)f->dup, (uint64_t)f->corrupt,
               (uint64_t)f->reorder, (uint64_t)f->late, (uint64_t)f->foreign,
               (uint64_t)f->tx_retry);
        if (f->error) {
            printf("NETTEST-ERROR flow %u: socket error: %s\n", f->id, strerror(f->error));
            reason = "socket-error";
        }
        if (f->rtt_n) {
            rtt_min = f->rtt_min_ns < rtt_min ? f->rtt_min_ns : rtt_min;
            rtt_max = f->rtt_max_ns > rtt_max ? f->rtt_max_ns : rtt_max;
            rtt_sum += f->rtt_sum_ns;
            rtt_n += f->rtt_n;
        }
    }
    if (q_after)
        print_queue_deltas(&qs, q_before, q_after);
    if (rtt_n)
        printf("NETTEST-RTT min_us=%" PRIu64 " avg_us=%" PRIu64 " max_us=%" PRIu64 "\n",
               rtt_min / 1000, rtt_sum / rtt_n / 1000, rtt_max / 1000);

    struct totals s = sum_flows(flows, opt.threads);
    if (atomic_load(&abort_now) && !reason)
        reason = "interrupted";
    if (opt.expect_none) {
        pass = !reason && s.received == 0 && s.dup == 0 && s.corrupt == 0;
        if (!reason && !pass)
            reason = "frames-came-back";
    } else {
        pass = !reason && s.lost == 0 && s.dup == 0 && s.corrupt == 0 && s.sent > 0;
        if (!reason && !pass)
            reason = s.sent == 0 ? "nothing-sent" : s.corrupt ? "corrupt" : s.dup ? "dup" : "lost";
    }
    printf("NETTEST sent=%" PRIu64 " received=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64
           " corrupt=%" PRIu64 " reorder=%" PRIu64 " mac=%s late=%" PRIu64 " foreign=%" PRIu64
           " tx_retry=%" PRIu64 " mode=%s threads=%u elapsed=%.3f fps=%.0f result=%s%s%s\n",
           s.sent, s.received, s.lost, s.dup, s.corrupt, s.reorder, mac, s.late, s.foreign,
           s.tx_retry, mode, opt.threads, elapsed, elapsed > 0 ? (double)s.received / elapsed : 0,
           pass ? "PASS" : "FAIL", reason ? " reason=" : "", reason ? reason : "");
    return pass ? 0 : 1;
}

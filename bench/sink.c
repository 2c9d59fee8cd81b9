/*
 * sink: a cheap WebSocket load client for the certstream benchmarks.
 *
 * Why C: the fan-out figures (frames/s per core, CPU per frame) are only meaningful if the
 * clients cost much less than the server.  A Python client spends more per frame than the
 * server does, so it would measure itself.  One epoll loop here holds thousands of
 * connections and costs well under a microsecond per frame.
 *
 * Usage: sink HOST PORT PATH K [TSKEY [deflate]]
 *   Opens K WebSocket connections to ws://HOST:PORT/PATH (at most 256 handshakes in flight,
 *   so the server's listen backlog is never the bottleneck), then counts every data frame
 *   and byte.  PATH "@FILE" gives each connection its own path: connection i takes line
 *   i % n of FILE (e.g. a different filter query per client).  If TSKEY is given (e.g.
 *   "bench_ts" or "seen"; "" for none), each text frame is searched for "TSKEY": followed by
 *   a number of seconds since the epoch, and now - that is recorded in a latency histogram
 *   (10 us buckets up to 10 s); with 64 or more connections only every 8th connection is
 *   sampled.
 *   With "deflate", every connection offers permessage-deflate (RFC 7692); a connection
 *   whose server does not accept it fails.  Each compressed message (RSV1) is inflated on
 *   its own (the server must not use context takeover) before it is counted, so the
 *   frames and bytes counted are messages as the application reads them, and the sink
 *   pays for inflating like any real client; a message that does not inflate counts as
 *   zerrors.
 *
 * Environment: SINK_SOURCES=127.0.0.2,127.0.0.3 binds connection i to source address
 *   i % n of the list (IP_BIND_ADDRESS_NO_PORT: the port is picked at connect, per
 *   destination), so that one machine can open more connections to one server port than
 *   one source address has ephemeral ports (~28,000 on Linux by default).
 *
 * Control, one command per line on stdin, one answer line on stdout:
 *   R  report: "open=N ok=N failed=N closed=N frames=N bytes=N pings=N lat_n=N p50=US
 *      p90=US p99=US p999=US max=US zframes=N zbytes=N zerrors=N"; counters are cumulative;
 *      zframes counts compressed messages, zbytes their compressed payload bytes
 *   L  reset the latency histogram (answers "ok")
 *   Q  quit
 * Pings are answered with masked pongs; a Close frame is counted and the socket closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_INFLIGHT 256
#define RBUF (1 << 20)
#define NBUCKETS 1000000 /* 10 us each: 10 s */
#define BUCKET_US 10
#define MAX_FRAME (64ULL << 20)
#define INFLATED (8 << 20) /* the largest message inflated */

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

typedef struct {
    int fd;
    int state;
    char *buf; /* leftover bytes: handshake text or a partial frame */
    size_t len, cap;
    const char *path;
} conn_t;

static conn_t *conns;
static int nconns;
static char host[64], path[512];
static int port;
static const char *tskey;
static char tsneedle[128];
static size_t tsneedle_len;
static uint32_t *hist;
static uint64_t lat_n, lat_max_us;
static uint64_t n_ok, n_failed, n_closed, n_frames, n_bytes, n_pings;
static uint64_t n_zframes, n_zbytes, n_zerrors;
static int deflate_on;
static z_stream zin;
static unsigned char *inflated;
static char **paths;
static int npaths;
static int n_open, next_to_start, inflight;
static int epfd;
static struct in_addr *sources;
static int nsources;

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static void load_sources(const char *list) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        struct in_addr a;
        if (inet_pton(AF_INET, tok, &a) != 1) {
            fprintf(stderr, "sink: SINK_SOURCES: not an IPv4 address: %s\n", tok);
            exit(2);
        }
        sources = realloc(sources, sizeof *sources * (size_t)(nsources + 1));
        if (!sources) { perror("realloc"); exit(1); }
        sources[nsources++] = a;
    }
}


static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void kill_conn(conn_t *c, int failed) {
    if (c->state == ST_DEAD) return;
    if (c->state == ST_OPEN) n_open--;
    if (c->state != ST_OPEN) inflight--;
    if (failed) n_failed++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_DEAD;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static void keep(conn_t *c, const char *p, size_t n) {
    if (n == 0) { c->len = 0; return; }
    if (c->cap < n) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < n) cap *= 2;
        char *nb = malloc(cap);
        if (!nb) { perror("malloc"); exit(1); }
        free(c->buf);
        c->buf = nb;
        c->cap = cap;
    }
    memmove(c->buf, p, n);
    c->len = n;
}

static void send_pong(conn_t *c, const unsigned char *payload, size_t n) {
    unsigned char out[2 + 4 + 125];
    if (n > 125) n = 125;
    out[0] = 0x8A;
    out[1] = 0x80 | (unsigned char)n;
    memset(out + 2, 0, 4); /* mask key 0: valid, and the payload stays as is */
    memcpy(out + 6, payload, n);
    (void)!write(c->fd, out, 6 + n);
}

static void record_latency(const unsigned char *p, size_t n) {
    const char *hit = memmem(p, n, tsneedle, tsneedle_len);
    if (!hit) return;
    char num[40];
    size_t off = (size_t)(hit - (const char *)p) + tsneedle_len, k = 0;
    while (off < n && k < sizeof num - 1 && (p[off] == '.' || p[off] == '-' || p[off] == 'e' ||
                                              p[off] == '+' || (p[off] >= '0' && p[off] <= '9')))
        num[k++] = (char)p[off++];
    num[k] = 0;
    if (!k) return;
    double sent = strtod(num, NULL);
    double us = (now_s() - sent) * 1e6;
    if (us < 0) us = 0;
    uint64_t u = (uint64_t)us;
    uint64_t b = u / BUCKET_US;
    if (b >= NBUCKETS) b = NBUCKETS - 1;
    hist[b]++;
    lat_n++;
    if (u > lat_max_us) lat_max_us = u;
}

/* Parse complete frames from p[0..n); return how many bytes were consumed. */
static size_t parse_frames(conn_t *c, unsigned char *p, size_t n) {
    size_t pos = 0;
    while (n - pos >= 2) {
        unsigned char b0 = p[pos], b1 = p[pos + 1];
        size_t hdr = 2;
        uint64_t plen = b1 & 0x7F;
        if (plen == 126) {
            if (n - pos < 4) break;
            plen = ((uint64_t)p[pos + 2] << 8) | p[pos + 3];
            hdr = 4;
        } else if (plen == 127) {
            if (n - pos < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | p[pos + 2 + i];
            hdr = 10;
        }
        if (b1 & 0x80) hdr += 4; /* servers must not mask, but do not choke if one does */
        if (plen > MAX_FRAME) { /* garbage, or a frame we must not buffer: give up on it */
            kill_conn(c, 1);
            return n;
        }
        if (n - pos < hdr || plen > n - pos - hdr) break;
        unsigned char *payload = p + pos + hdr;
        const size_t wire = hdr + (size_t)plen; /* this frame's bytes on the wire */
        int opcode = b0 & 0x0F;
        if ((b0 & 0x40) && opcode == 0x1) { /* permessage-deflate: inflate on its own */
            static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
            n_zframes++;
            n_zbytes += plen;
            inflateReset(&zin);
            zin.next_out = inflated;
            zin.avail_out = INFLATED;
            zin.next_in = payload;
            zin.avail_in = (uInt)plen;
            int rc = inflate(&zin, Z_SYNC_FLUSH);
            if (rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END) {
                zin.next_in = (unsigned char *)tail;
                zin.avail_in = 4;
                rc = inflate(&zin, Z_SYNC_FLUSH);
            }
            if ((rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) || zin.avail_out == 0) {
                n_zerrors++;
            } else {
                payload = inflated;
                plen = INFLATED - zin.avail_out;
            }
        }
        if (opcode == 0x9) {
            n_pings++;
            send_pong(c, payload, (size_t)plen);
        } else if (opcode == 0x8) {
            n_closed++;
            kill_conn(c, 0);
            return n;
        } else if (opcode != 0xA) {
            n_frames++;
            n_bytes += plen;
            /* Latency is sampled on every 8th connection once there are many: scanning
             * every frame of every connection would make the sink cost like the server. */
            if (tskey && opcode == 0x1 && (nconns < 64 || (c - conns) % 8 == 0))
                record_latency(payload, (size_t)plen);
        }
        pos += wire;
    }
    return pos;
}

static void start_more(void);

/* PATH "@FILE": one path per line. */
static int load_paths(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) { perror(file); return -1; }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        if (!n) continue;
        char **grown = realloc(paths, sizeof(char *) * (size_t)(npaths + 1));
        if (!grown) { perror("realloc"); exit(1); }
        paths = grown;
        paths[npaths++] = strdup(line);
    }
    fclose(f);
    if (!npaths) { fprintf(stderr, "%s: no paths\n", file); return -1; }
    return 0;
}

static void on_readable(conn_t *c, unsigned char *rbuf) {
    for (;;) {
        ssize_t r = read(c->fd, rbuf, RBUF);
        if (r == 0) { kill_conn(c, c->state != ST_OPEN); start_more(); return; }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            kill_conn(c, c->state != ST_OPEN);
            start_more();
            return;
        }
        unsigned char *p = rbuf;
        size_t n = (size_t)r;
        if (c->len) { /* join with leftover: append to the connection's buffer */
            size_t total = c->len + n;
            if (c->cap < total) {
                size_t cap = c->cap ? c->cap : 4096;
                while (cap < total) cap *= 2;
                char *nb = realloc(c->buf, cap);
                if (!nb) { perror("realloc"); exit(1); }
                c->buf = nb;
                c->cap = cap;
            }
            memcpy(c->buf + c->len, rbuf, n);
            c->len = total;
            p = (unsigned char *)c->buf;
            n = total;
        }
        if (c->state == ST_HANDSHAKE) {
            char *end = memmem(p, n, "\r\n\r\n", 4);
            if (!end) { keep(c, (char *)p, n); continue; }
            if (n < 12 || memcmp(p + 9, "101", 3) != 0 ||
                (deflate_on && !memmem(p, (size_t)(end - (char *)p), "permessage-deflate", 18))) {
                kill_conn(c, 1);
                start_more();
                return;
            }
            c->state = ST_OPEN;
            n_open++;
            n_ok++;
            inflight--;
            size_t used = (size_t)(end + 4 - (char *)p);
            p += used;
            n -= used;
            start_more();
        }
        size_t used = parse_frames(c, p, n);
        if (c->state == ST_DEAD) return;
        keep(c, (char *)p + used, n - used);
        if ((size_t)r < RBUF) return; /* drained (edge-triggered would need a loop to EAGAIN) */
    }
}

static void start_one(int i) {
    conn_t *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { perror("socket"); n_failed++; c->state = ST_DEAD; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->state = ST_CONNECTING;
    c->path = npaths ? paths[i % npaths] : path;
    inflight++;
    if (nsources) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_addr = sources[i % nsources];
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            perror("bind");
            kill_conn(c, 1);
            return;
        }
    }
    int rc = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 && errno != EINPROGRESS) { kill_conn(c, 1); return; }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i + 1};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void start_more(void) {
    while (inflight < MAX_INFLIGHT && next_to_start < nconns) start_one(next_to_start++);
}

static void on_writable(conn_t *c) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) { kill_conn(c, 1); start_more(); return; }
    /* The request is far smaller than an empty socket buffer: one write suffices. */
    char request[4096];
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n%s\r\n",
                               c->path, host, port,
                               deflate_on ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                            "client_max_window_bits\r\n" : "");
    if (request_len <= 0 || request_len >= (int)sizeof request ||
        write(c->fd, request, (size_t)request_len) != (ssize_t)request_len) {
        kill_conn(c, 1);
        start_more();
        return;
    }
    c->state = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - conns) + 1};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static uint64_t percentile(double q) {
    if (!lat_n) return 0;
    uint64_t want = (uint64_t)(q * (double)lat_n);
    if (want >= lat_n) want = lat_n - 1;
    uint64_t acc = 0;
    for (uint64_t b = 0; b < NBUCKETS; b++) {
        acc += hist[b];
        if (acc > want) return (b + 1) * BUCKET_US; /* upper edge: never flatters */
    }
    return lat_max_us;
}

static int on_command(void) {
    static char line[256];
    static size_t ll;
    ssize_t r = read(0, line + ll, sizeof line - 1 - ll);
    if (r <= 0) return 0;
    ll += (size_t)r;
    char *nl;
    while ((nl = memchr(line, '\n', ll))) {
        char cmd = line[0];
        size_t used = (size_t)(nl - line) + 1;
        memmove(line, nl + 1, ll - used);
        ll -= used;
        if (cmd == 'Q') return 0;
        if (cmd == 'L') {
            memset(hist, 0, sizeof(uint32_t) * NBUCKETS);
            lat_n = lat_max_us = 0;
            printf("ok\n");
        } else if (cmd == 'R') {
            printf("open=%d ok=%llu failed=%llu closed=%llu frames=%llu bytes=%llu pings=%llu "
                   "lat_n=%llu p50=%llu p90=%llu p99=%llu p999=%llu max=%llu zframes=%llu "
                   "zbytes=%llu zerrors=%llu\n",
                   n_open, (unsigned long long)n_ok, (unsigned long long)n_failed,
                   (unsigned long long)n_closed, (unsigned long long)n_frames,
                   (unsigned long long)n_bytes, (unsigned long long)n_pings,
                   (unsigned long long)lat_n, (unsigned long long)percentile(0.50),
                   (unsigned long long)percentile(0.90), (unsigned long long)percentile(0.99),
                   (unsigned long long)percentile(0.999), (unsigned long long)lat_max_us,
                   (unsigned long long)n_zframes, (unsigned long long)n_zbytes,
                   (unsigned long long)n_zerrors);
        }
        fflush(stdout);
    }
    if (ll == sizeof line - 1) ll = 0; /* an over-long line: drop it */
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: sink HOST PORT PATH K [TSKEY [deflate]]\n");
        return 2;
    }
    snprintf(host, sizeof host, "%s", argv[1]);
    port = atoi(argv[2]);
    snprintf(path, sizeof path, "%s", argv[3]);
    if (path[0] == '@' && load_paths(path + 1) != 0) return 2;
    if (argc > 6 && strcmp(argv[6], "deflate") == 0) {
        deflate_on = 1;
        inflated = malloc(INFLATED);
        if (!inflated || inflateInit2(&zin, -15) != Z_OK) { perror("inflate"); return 1; }
    }
    nconns = atoi(argv[4]);
    if (getenv("SINK_SOURCES") && *getenv("SINK_SOURCES")) load_sources(getenv("SINK_SOURCES"));
    if (argc > 5 && argv[5][0]) {
        tskey = argv[5];
        snprintf(tsneedle, sizeof tsneedle, "\"%s\":", tskey);
        tsneedle_len = strlen(tsneedle);
    }
    hist = calloc(NBUCKETS, sizeof(uint32_t));
    conns = calloc((size_t)nconns + 1, sizeof(conn_t));
    unsigned char *rbuf = malloc(RBUF);
    if (!hist || !conns || !rbuf) { perror("calloc"); return 1; }
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    start_more();
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(epfd, evs, 512, 1000);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            uint32_t id = evs[i].data.u32;
            if (id == 0) {
                if (!on_command()) return 0;
                continue;
            }
            conn_t *c = &conns[id - 1];
            if (c->state == ST_DEAD) continue;
            if (c->state == ST_CONNECTING) {
                if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, rbuf);
        }
    }
}

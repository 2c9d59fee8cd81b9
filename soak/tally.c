/*
 * tally: cheap WebSocket and SSE clients that check what they receive, for the soak run and
 * the crash tests.
 *
 * Why C: a hundred clients at 1,000 entries/s is 100,000 frames/s; Python clients would
 * take the cores the server is being measured on.  One epoll loop here costs well under a
 * microsecond per frame (the same design as bench/sink.c, plus SSE and the bookkeeping).
 *
 * Usage: tally HOST PORT N_WS N_SSE
 *   N_WS clients of ws://HOST:PORT/ (the lite stream) and N_SSE of http://HOST:PORT/sse.
 *   A client whose connection ends connects again 100 ms later, for as long as it runs.
 *   From every frame or event it reads "cert_index":N and keeps, across its reconnections:
 *   the first and last index, frames, repeats (an index not above the last one), gaps
 *   (indices skipped between two frames of one connection) and missed (indices skipped
 *   between the last frame before a reconnection and the first one after).  One log is
 *   assumed: one sequence of indices, as the soak and the crash tests serve.  Drop notices
 *   (a client too slow) and Close frames are counted.
 *
 * Control, one command per line on stdin, one answer per command on stdout:
 *   R  totals, one line: "open=N connects=N disconnects=N frames=N bytes=N repeats=N
 *      gaps=N missed=N notices=N closes=N min_last=N max_last=N"
 *   P  one line per client, then "end": "I KIND FIRST LAST FRAMES REPEATS GAPS MISSED
 *      CONNECTS" (KIND ws or sse; FIRST and LAST -1 before any frame)
 *   Q  quit
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RBUF (1 << 20)
#define MAX_FRAME (64ULL << 20)
#define RETRY_MS 100

enum { ST_IDLE, ST_CONNECTING, ST_HEAD, ST_OPEN };

typedef struct {
    int fd;
    int state;
    int sse;
    char *buf; /* leftover bytes: the response head, a partial frame or event */
    size_t len, cap;
    double retry_at; /* ST_IDLE: when to connect again */
    int64_t first, last;
    int fresh; /* no frame yet on this connection */
    uint64_t frames, repeats, gaps, missed, connects;
} client_t;

static client_t *clients;
static int nclients, nws;
static char host[64];
static int port;
static int epfd, tfd;
static char ws_req[512], sse_req[512];
static size_t ws_req_len, sse_req_len;
static uint64_t n_frames, n_bytes, n_disconnects, n_notices, n_closes;
static int n_open;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void keep(client_t *c, const char *p, size_t n) {
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

static void drop(client_t *c) {
    if (c->state == ST_IDLE) return;
    if (c->state == ST_OPEN) { n_open--; n_disconnects++; }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = ST_IDLE;
    c->len = 0;
    c->retry_at = now_s() + RETRY_MS / 1000.0;
}

static void start(client_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { perror("socket"); exit(1); }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->state = ST_CONNECTING;
    int rc = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->state = ST_IDLE;
        c->retry_at = now_s() + RETRY_MS / 1000.0;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - clients) + 2};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* One index arrived on client c. */
static void saw(client_t *c, int64_t idx) {
    c->frames++;
    n_frames++;
    if (c->first < 0) c->first = idx;
    if (c->last >= 0) {
        if (idx <= c->last) {
            c->repeats++;
            c->fresh = 0;
            return;
        }
        if (idx > c->last + 1) {
            if (c->fresh) c->missed += (uint64_t)(idx - c->last - 1); /* across a reconnect */
            else c->gaps += (uint64_t)(idx - c->last - 1);
        }
    }
    c->fresh = 0;
    c->last = idx;
}

static void scan(client_t *c, const char *p, size_t n) {
    static const char needle[] = "\"cert_index\":";
    const char *hit = memmem(p, n, needle, sizeof needle - 1);
    if (!hit) {
        if (memmem(p, n, "\"message_type\":\"notice\"", 23) || memmem(p, n, ": dropped ", 10))
            n_notices++;
        return;
    }
    size_t off = (size_t)(hit - p) + sizeof needle - 1;
    int64_t v = 0;
    int digits = 0;
    while (off < n && p[off] >= '0' && p[off] <= '9') { v = v * 10 + (p[off++] - '0'); digits++; }
    if (digits) saw(c, v);
}

static void send_pong(client_t *c, const unsigned char *payload, size_t n) {
    unsigned char out[2 + 4 + 125];
    if (n > 125) n = 125;
    out[0] = 0x8A;
    out[1] = 0x80 | (unsigned char)n;
    memset(out + 2, 0, 4); /* mask key 0: valid, and the payload stays as is */
    memcpy(out + 6, payload, n);
    (void)!write(c->fd, out, 6 + n);
}

/* WebSocket frames in p[0..n); returns the bytes used, or (size_t)-1 if the client was dropped. */
static size_t ws_frames(client_t *c, unsigned char *p, size_t n) {
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
        if (b1 & 0x80) hdr += 4;
        if (plen > MAX_FRAME) { drop(c); return (size_t)-1; }
        if (n - pos < hdr || plen > n - pos - hdr) break;
        unsigned char *payload = p + pos + hdr;
        int opcode = b0 & 0x0F;
        if (opcode == 0x9) {
            send_pong(c, payload, (size_t)plen);
        } else if (opcode == 0x8) {
            n_closes++;
            drop(c);
            return (size_t)-1;
        } else if (opcode == 0x1) {
            n_bytes += plen;
            scan(c, (const char *)payload, (size_t)plen);
        }
        pos += hdr + (size_t)plen;
    }
    return pos;
}

/* SSE events (ending in a blank line) in p[0..n); returns the bytes used. */
static size_t sse_events(client_t *c, const char *p, size_t n) {
    size_t pos = 0;
    for (;;) {
        const char *end = memmem(p + pos, n - pos, "\n\n", 2);
        if (!end) break;
        size_t len = (size_t)(end - (p + pos));
        n_bytes += len;
        scan(c, p + pos, len);
        pos += len + 2;
    }
    return pos;
}

static void on_readable(client_t *c, unsigned char *rbuf) {
    for (;;) {
        ssize_t r = read(c->fd, rbuf, RBUF);
        if (r == 0) { drop(c); return; }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            drop(c);
            return;
        }
        unsigned char *p = rbuf;
        size_t n = (size_t)r;
        if (c->len) {
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
        if (c->state == ST_HEAD) {
            char *end = memmem(p, n, "\r\n\r\n", 4);
            if (!end) { keep(c, (char *)p, n); continue; }
            const char *want = c->sse ? "200" : "101";
            if (n < 12 || memcmp(p + 9, want, 3) != 0) { drop(c); return; }
            c->state = ST_OPEN;
            c->fresh = 1;
            c->connects++;
            n_open++;
            size_t used = (size_t)(end + 4 - (char *)p);
            p += used;
            n -= used;
        }
        size_t used = c->sse ? sse_events(c, (const char *)p, n) : ws_frames(c, p, n);
        if (used == (size_t)-1 || c->state != ST_OPEN) return;
        keep(c, (char *)p + used, n - used);
        if ((size_t)r < RBUF) return;
    }
}

static void on_writable(client_t *c) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    const char *req = c->sse ? sse_req : ws_req;
    size_t len = c->sse ? sse_req_len : ws_req_len;
    if (err || write(c->fd, req, len) != (ssize_t)len) { drop(c); return; }
    c->state = ST_HEAD;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - clients) + 2};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void retry_due(void) {
    double t = now_s();
    for (int i = 0; i < nclients; i++)
        if (clients[i].state == ST_IDLE && clients[i].retry_at <= t) start(&clients[i]);
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
        if (cmd == 'R') {
            uint64_t connects = 0, repeats = 0, gaps = 0, missed = 0;
            int64_t min_last = -1, max_last = -1;
            for (int i = 0; i < nclients; i++) {
                client_t *c = &clients[i];
                connects += c->connects;
                repeats += c->repeats;
                gaps += c->gaps;
                missed += c->missed;
                if (c->last >= 0 && (min_last < 0 || c->last < min_last)) min_last = c->last;
                if (c->last > max_last) max_last = c->last;
            }
            printf("open=%d connects=%llu disconnects=%llu frames=%llu bytes=%llu repeats=%llu "
                   "gaps=%llu missed=%llu notices=%llu closes=%llu min_last=%lld max_last=%lld\n",
                   n_open, (unsigned long long)connects, (unsigned long long)n_disconnects,
                   (unsigned long long)n_frames, (unsigned long long)n_bytes,
                   (unsigned long long)repeats, (unsigned long long)gaps,
                   (unsigned long long)missed, (unsigned long long)n_notices,
                   (unsigned long long)n_closes, (long long)min_last, (long long)max_last);
        } else if (cmd == 'P') {
            for (int i = 0; i < nclients; i++) {
                client_t *c = &clients[i];
                printf("%d %s %lld %lld %llu %llu %llu %llu %llu\n", i, c->sse ? "sse" : "ws",
                       (long long)c->first, (long long)c->last, (unsigned long long)c->frames,
                       (unsigned long long)c->repeats, (unsigned long long)c->gaps,
                       (unsigned long long)c->missed, (unsigned long long)c->connects);
            }
            printf("end\n");
        }
        fflush(stdout);
    }
    if (ll == sizeof line - 1) ll = 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: tally HOST PORT N_WS N_SSE\n");
        return 2;
    }
    snprintf(host, sizeof host, "%s", argv[1]);
    port = atoi(argv[2]);
    nws = atoi(argv[3]);
    nclients = nws + atoi(argv[4]);
    clients = calloc((size_t)nclients + 1, sizeof(client_t));
    unsigned char *rbuf = malloc(RBUF);
    if (!clients || !rbuf) { perror("calloc"); return 1; }
    ws_req_len = (size_t)snprintf(ws_req, sizeof ws_req,
                                  "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n\r\n", host, port);
    sse_req_len = (size_t)snprintf(sse_req, sizeof sse_req,
                                   "GET /sse HTTP/1.1\r\nHost: %s:%d\r\n"
                                   "Accept: text/event-stream\r\n\r\n", host, port);
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec its = {.it_interval = {0, 50 * 1000000}, .it_value = {0, 50 * 1000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = 1};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);
    for (int i = 0; i < nclients; i++) {
        client_t *c = &clients[i];
        c->sse = i >= nws;
        c->fd = -1;
        c->first = c->last = -1;
        start(c);
    }
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
            if (id == 1) {
                uint64_t ticks;
                (void)!read(tfd, &ticks, sizeof ticks);
                retry_due();
                continue;
            }
            client_t *c = &clients[id - 2];
            if (c->state == ST_IDLE) continue;
            if (c->state == ST_CONNECTING) {
                if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, rbuf);
        }
    }
}

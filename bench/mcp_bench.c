/*
 * MCP point-lookup benchmark (run through bench/mcp).
 *
 * One process runs a topology on the built-in Nexmark generator, paced at
 * --rate events/s (default 600,000), keeping a kv store of bids per bidder
 * (an aggregate: count, max, last), and serves MCP over Streamable HTTP on
 * 127.0.0.1 exactly as `mcp-serve --http` does. Client threads open one
 * keep-alive connection each, initialize a session, then call the
 * get_value tool for random known bidders as fast as the answers come, for
 * --seconds. Reported: the ingest rate achieved while serving, calls per
 * second, latency percentiles of the calls (request written to response
 * read), and peak RSS; written to bench/results/mcp.json.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eddy.h"
#include "mcp/mcp.h"
#include "mcp/mcp_transport.h"

static const char *TOPO =
    "application: mcp-bench\n"
    "settings: {threads: 1, commit.interval.ms: 100, state.dir: '%s'}\n"
    "sources:\n"
    "  - name: nexmark\n"
    "    type: nexmark\n"
    "    events: 0\n"
    "    partitions: 1\n"
    "    rate: %.0f\n"
    "    watermark: {max_out_of_orderness: 4s}\n"
    "pipelines:\n"
    "  - name: bidders\n"
    "    from: bid\n"
    "    steps:\n"
    "      - aggregate:\n"
    "          by: bidder\n"
    "          fields: {bids: count(), max_price: max(price), last_auction: last(auction)}\n"
    "          store: bidders\n"
    "    to: out\n"
    "sinks: [{name: out, type: blackhole}]\n";

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct {
    int port;
    double until;
    int64_t *keys;
    int nkeys;
    uint64_t seed;
    /* out */
    double *lat_ms;
    size_t nlat, cap;
    uint64_t calls, found, errors;
} client_t;

static int conn_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* One HTTP/1.1 exchange on a keep-alive connection. Returns the status;
 * body (NUL-terminated) in buf; the session id header, when present. */
static int exchange(int fd, const char *sid, const char *body, char *buf, size_t cap,
                    char *sid_out, size_t sid_cap) {
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\n"
                     "MCP-Protocol-Version: 2025-11-25\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
                     sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "",
                     strlen(body), body);
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, req + off, (size_t)(n - off));
        if (w <= 0)
            return -1;
        off += (int)w;
    }
    size_t len = 0;
    char *hdr_end = NULL;
    while (!hdr_end) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = 0;
        hdr_end = strstr(buf, "\r\n\r\n");
        if (!hdr_end && len >= cap - 1)
            return -1;
    }
    int status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t clen = cl && cl < hdr_end ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
    if (sid_out) {
        const char *s = strcasestr(buf, "Mcp-Session-Id:");
        if (s && s < hdr_end) {
            s += 15;
            while (*s == ' ')
                s++;
            size_t k = 0;
            while (s[k] && s[k] != '\r' && k + 1 < sid_cap) {
                sid_out[k] = s[k];
                k++;
            }
            sid_out[k] = 0;
        }
    }
    size_t hl = (size_t)(hdr_end + 4 - buf);
    if (hl + clen >= cap)
        return -1;
    while (len < hl + clen) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
    memmove(buf, buf + hl, clen);
    buf[clen] = 0;
    return status;
}

static void *client_main(void *arg) {
    client_t *c = arg;
    int fd = conn_open(c->port);
    if (fd < 0)
        return NULL;
    static const size_t CAP = 1 << 20;
    char *buf = malloc(CAP);
    char sid[128] = "";
    exchange(fd, NULL,
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":"
             "\"mcp-bench\",\"version\":\"1\"}}}",
             buf, CAP, sid, sizeof(sid));
    exchange(fd, sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", buf, CAP,
             NULL, 0);
    uint64_t x = c->seed;
    char body[512];
    for (uint64_t id = 1; now_s() < c->until; id++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t key = c->keys[(x >> 33) % (uint64_t)c->nkeys];
        snprintf(body, sizeof(body),
                 "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"get_value\",\"arguments\":{\"store\":\"bidders\",\"key\":%lld}}}",
                 (unsigned long long)id, (long long)key);
        double t0 = now_s();
        int st = exchange(fd, sid, body, buf, CAP, NULL, 0);
        double t1 = now_s();
        if (st != 200) {
            c->errors++;
            if (st < 0) {
                close(fd);
                fd = conn_open(c->port);
                if (fd < 0)
                    break;
            }
            continue;
        }
        c->calls++;
        if (strstr(buf, "\"found\":true"))
            c->found++;
        if (c->nlat == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->lat_ms = realloc(c->lat_ms, c->cap * sizeof(double));
        }
        c->lat_ms[c->nlat++] = (t1 - t0) * 1e3;
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int64_t *keys;
    int n, cap;
} keys_t;

static eddy_err_t collect_key(const eddy_record_t *rec, void *opaque) {
    keys_t *k = opaque;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 4096;
        k->keys = realloc(k->keys, sizeof(int64_t) * (size_t)k->cap);
    }
    k->keys[k->n++] = rec->values[0].u.i;
    return EDDY_OK;
}

int main(int argc, char **argv) {
    double rate = 600000, seconds = 20, warmup = 3;
    int clients = 1;
    const char *results = "bench/results";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
            clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--results-dir") && i + 1 < argc)
            results = argv[++i];
        else {
            fprintf(stderr, "usage: mcp_bench [--rate EV_PER_S] [--seconds S] [--clients N] "
                            "[--results-dir DIR]\n");
            return 2;
        }
    }
    if (clients < 1 || clients > 64 || seconds <= 0)
        return 2;
    char dir[] = "/tmp/eddy_mcp_bench_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char yaml[4096], err[1024];
    snprintf(yaml, sizeof(yaml), TOPO, dir, rate);
    eddy_topology_t *t = eddy_topology_load_string(yaml, strlen(yaml), "mcp-bench", err, sizeof(err));
    eddy_engine_t *eng = t ? eddy_engine_new(t, NULL, err, sizeof(err)) : NULL;
    if (!eng) {
        fprintf(stderr, "mcp_bench: %s\n", err);
        return 1;
    }
    eddy_mcp_opts_t mo;
    eddy__mcp_opts_default(&mo);
    eddy_mcp_t *m = eddy__mcp_new(eng, &mo);
    eddy_engine_start(eng);
    eddy_mcp_http_t *srv = eddy__mcp_http_start(m, "127.0.0.1:0", NULL, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "mcp_bench: %s\n", err);
        return 1;
    }
    int port = eddy__mcp_http_port(srv);
    /* warm up: let the store fill, then learn the keys (bidders) it holds */
    double tw = now_s();
    while (now_s() - tw < warmup)
        usleep(100000);
    keys_t keys = {0};
    char cur[9000] = "";
    do {
        if (eddy_engine_query_scan(eng, "bidders", cur, 4096, collect_key, &keys, cur,
                                   sizeof(cur)))
            break;
    } while (cur[0] && keys.n < 1000000);
    if (!keys.n) {
        fprintf(stderr, "mcp_bench: the store is empty after warm-up\n");
        return 1;
    }
    eddy_stats_t s0, s1;
    eddy_engine_stats(eng, &s0);
    double t0 = now_s();
    client_t *cs = calloc((size_t)clients, sizeof(*cs));
    pthread_t *th = calloc((size_t)clients, sizeof(*th));
    for (int i = 0; i < clients; i++) {
        cs[i] = (client_t){.port = port, .until = t0 + seconds, .keys = keys.keys, .nkeys = keys.n,
                           .seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1)};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    double t1 = now_s();
    eddy_engine_stats(eng, &s1);
    size_t nl = 0;
    uint64_t calls = 0, found = 0, errors = 0;
    for (int i = 0; i < clients; i++)
        nl += cs[i].nlat;
    double *lat = malloc((nl + 1) * sizeof(double));
    nl = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(lat + nl, cs[i].lat_ms, cs[i].nlat * sizeof(double));
        nl += cs[i].nlat;
        calls += cs[i].calls;
        found += cs[i].found;
        errors += cs[i].errors;
        free(cs[i].lat_ms);
    }
    qsort(lat, nl, sizeof(double), cmp_d);
#define PCT(p) (nl ? lat[(size_t)((double)(nl - 1) * (p))] : 0.0)
    double el = t1 - t0;
    double ingest = (double)(s1.events_in - s0.events_in) / el;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    char path[4200];
    snprintf(path, sizeof(path), "%s/mcp.json", results);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f,
                "{\n  \"what\": \"get_value tool calls over MCP Streamable HTTP (keep-alive) "
                "while the topology ingests\",\n"
                "  \"ingest_target_events_per_second\": %.0f,\n"
                "  \"ingest_events_per_second\": %.0f,\n  \"calls_per_second\": %.0f,\n"
                "  \"p50_ms\": %.4f,\n  \"p90_ms\": %.4f,\n  \"p99_ms\": %.4f,\n"
                "  \"p999_ms\": %.4f,\n  \"max_ms\": %.4f,\n  \"calls\": %llu,\n"
                "  \"found\": %llu,\n  \"errors\": %llu,\n  \"clients\": %d,\n"
                "  \"keys\": %d,\n  \"seconds\": %.2f,\n  \"process_cpu_seconds\": %.2f,\n"
                "  \"peak_rss_bytes\": %ld\n}\n",
                rate, ingest, (double)calls / el, PCT(0.5), PCT(0.9), PCT(0.99), PCT(0.999),
                nl ? lat[nl - 1] : 0.0, (unsigned long long)calls, (unsigned long long)found,
                (unsigned long long)errors, clients, keys.n, el, cpu, ru.ru_maxrss * 1024L);
        fclose(f);
    }
    printf("ingest %.0f events/s (target %.0f) | %d client(s): %.0f calls/s, p50 %.3f ms, p99 "
           "%.3f ms, p99.9 %.3f ms | %llu calls, %llu found, %llu errors | peak RSS %ld MiB\n",
           ingest, rate, clients, (double)calls / el, PCT(0.5), PCT(0.99), PCT(0.999),
           (unsigned long long)calls, (unsigned long long)found, (unsigned long long)errors,
           ru.ru_maxrss / 1024L);
    free(lat);
    free(keys.keys);
    free(cs);
    free(th);
    eddy__mcp_http_stop(srv);
    eddy__mcp_destroy(m);
    eddy_engine_stop(eng);
    eddy_engine_poll(eng, 30000);
    eddy_engine_destroy(eng);
    eddy_topology_destroy(t);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) {
    }
    return errors ? 1 : 0;
}

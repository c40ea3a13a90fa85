/*
 * Avro decode benchmark (run through bench/avro): Nexmark bids encoded by
 * Avro C's writer, decoded into eddy's typed row (7 eddy_value_t) by
 *
 *   generic   Avro C's generic value API: avro_generic_class_from_schema,
 *             avro_value_read from a memory reader, then the fields copied
 *             into the row (avro_value_get_by_index + get_long/get_string),
 *             so both paths end with the same row;
 *   resolved  eddy's decode plan, writer == reader (zero-copy strings);
 *   evolved   eddy's decode plan, writer v1 -> reader v2 where v2 adds a
 *             field with a default and promotes price long -> double.
 *
 * Figures are records per CPU-second of the decoding thread (RUSAGE_THREAD),
 * each the best of three passes over the same records (at least --min-cpu
 * seconds per pass), and the row checksums of all paths must agree.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "connectors/avro.h"
#include "connectors/nexmark_gen.h"

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char BID_V1[] =
    "{\"type\":\"record\",\"name\":\"Bid\",\"namespace\":\"nexmark\",\"fields\":["
    "{\"name\":\"auction\",\"type\":\"long\"},"
    "{\"name\":\"bidder\",\"type\":\"long\"},"
    "{\"name\":\"price\",\"type\":\"long\"},"
    "{\"name\":\"channel\",\"type\":\"string\"},"
    "{\"name\":\"url\",\"type\":\"string\"},"
    "{\"name\":\"dateTime\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"extra\",\"type\":\"string\"}]}";

static const char BID_V2[] =
    "{\"type\":\"record\",\"name\":\"Bid\",\"namespace\":\"nexmark\",\"fields\":["
    "{\"name\":\"auction\",\"type\":\"long\"},"
    "{\"name\":\"bidder\",\"type\":\"long\"},"
    "{\"name\":\"price\",\"type\":\"double\"},"
    "{\"name\":\"currency\",\"type\":\"string\",\"default\":\"USD\"},"
    "{\"name\":\"channel\",\"type\":\"string\"},"
    "{\"name\":\"url\",\"type\":\"string\"},"
    "{\"name\":\"dateTime\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"extra\",\"type\":\"string\"}]}";

static double cpu_thread_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "avro_bench: %s: %s\n", what, why);
    exit(1);
}

typedef struct {
    char *buf;
    size_t *off; /* record i is buf[off[i] .. off[i+1]) */
    size_t n;
} corpus_t;

static void encode_bids(corpus_t *c, size_t n) {
    avro_schema_t s;
    if (avro_schema_from_json_length(BID_V1, strlen(BID_V1), &s))
        die("schema", avro_strerror());
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f;
    avro_generic_value_new(iface, &rec);
    eddy_nx_conf_t conf;
    eddy__nx_conf_default(&conf);
    eddy_nx_gen_t *g = eddy__nx_gen_new(&conf);
    size_t cap = n * 256 + 4096;
    c->buf = malloc(cap);
    c->off = malloc(sizeof(size_t) * (n + 1));
    c->n = n;
    avro_writer_t w = avro_writer_memory(c->buf, (int64_t)cap);
    char scratch[EDDY_NX_SCRATCH_BYTES], tmp[EDDY_NX_SCRATCH_BYTES + 1];
    eddy_nx_event_t ev;
    size_t k = 0;
    for (uint64_t e = 0; k < n; e++) {
        if (eddy__nx_kind(g, e) != EDDY_NX_BID)
            continue;
        eddy__nx_event(g, e, &ev, scratch);
        avro_value_get_by_index(&rec, 0, &f, NULL);
        avro_value_set_long(&f, ev.bid.auction);
        avro_value_get_by_index(&rec, 1, &f, NULL);
        avro_value_set_long(&f, ev.bid.bidder);
        avro_value_get_by_index(&rec, 2, &f, NULL);
        avro_value_set_long(&f, ev.bid.price);
        const eddy_nx_str_t *strs[3] = {&ev.bid.channel, &ev.bid.url, &ev.bid.extra};
        int idx[3] = {3, 4, 6};
        for (int i = 0; i < 3; i++) {
            memcpy(tmp, strs[i]->p, strs[i]->len);
            tmp[strs[i]->len] = 0;
            avro_value_get_by_index(&rec, (size_t)idx[i], &f, NULL);
            avro_value_set_string(&f, tmp);
        }
        avro_value_get_by_index(&rec, 5, &f, NULL);
        avro_value_set_long(&f, ev.ts_ms);
        c->off[k++] = (size_t)avro_writer_tell(w);
        if (avro_value_write(w, &rec))
            die("encode", avro_strerror());
    }
    c->off[n] = (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    eddy__nx_gen_destroy(g);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
}

/* Order-sensitive checksum of a row, so no path can skip work. */
static uint64_t row_sum(const eddy_value_t *v, int n) {
    uint64_t h = 0;
    for (int i = 0; i < n; i++) {
        uint64_t x;
        if (v[i].type == EDDY_TYPE_STRING || v[i].type == EDDY_TYPE_BYTES)
            x = v[i].len * 31u + (v[i].len ? (unsigned char)v[i].u.s[v[i].len - 1] : 0);
        else if (v[i].type == EDDY_TYPE_DOUBLE)
            x = (uint64_t)(int64_t)v[i].u.d;
        else
            x = (uint64_t)v[i].u.i;
        h = h * 1000003u + x;
    }
    return h;
}

typedef struct {
    double rate, cpu;
    uint64_t sum;
} result_t;

static result_t run_generic(const corpus_t *c, double min_cpu) {
    avro_schema_t s;
    avro_schema_from_json_length(BID_V1, strlen(BID_V1), &s);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f;
    avro_generic_value_new(iface, &rec);
    avro_reader_t r = avro_reader_memory(c->buf, 0);
    eddy_value_t row[7];
    result_t best = {0};
    for (int rep = 0; rep < 3; rep++) {
        uint64_t sum = 0, done = 0;
        double t0 = cpu_thread_now(), t;
        do {
            sum = 0; /* of one pass */
            for (size_t i = 0; i < c->n; i++) {
                avro_reader_memory_set_source(r, c->buf + c->off[i],
                                              (int64_t)(c->off[i + 1] - c->off[i]));
                if (avro_value_read(r, &rec))
                    die("avro_value_read", avro_strerror());
                for (int k = 0; k < 7; k++) {
                    avro_value_get_by_index(&rec, (size_t)k, &f, NULL);
                    if (k == 3 || k == 4 || k == 6) {
                        const char *p;
                        size_t len;
                        avro_value_get_string(&f, &p, &len);
                        row[k] = (eddy_value_t){.u.s = p, .len = (uint32_t)(len - 1),
                                                .type = EDDY_TYPE_STRING};
                    } else {
                        int64_t x;
                        avro_value_get_long(&f, &x);
                        row[k] = (eddy_value_t){
                            .u.i = x, .type = k == 5 ? EDDY_TYPE_TIMESTAMP : EDDY_TYPE_INT};
                    }
                }
                sum += row_sum(row, 7);
            }
            done += c->n;
            t = cpu_thread_now() - t0;
        } while (t < min_cpu);
        double rate = (double)done / t;
        if (rate > best.rate)
            best = (result_t){.rate = rate, .cpu = t, .sum = sum};
    }
    avro_reader_free(r);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    return best;
}

static result_t run_plan(const corpus_t *c, const char *reader_json, double min_cpu) {
    char err[512];
    eddy_avro_schema_t *w = eddy__avro_schema_parse(BID_V1, strlen(BID_V1), err, sizeof(err));
    eddy_avro_schema_t *r = w ? eddy__avro_schema_parse(reader_json, strlen(reader_json), err,
                                                        sizeof(err))
                              : NULL;
    eddy_avro_plan_t *plan = r ? eddy__avro_plan_new(w, r, err, sizeof(err)) : NULL;
    if (!plan)
        die("plan", err);
    int nf = eddy__avro_plan_schema(plan)->nfields;
    eddy_value_t row[8];
    eddy_arena_t arena;
    eddy_arena_init(&arena, 64 * 1024);
    result_t best = {0};
    for (int rep = 0; rep < 3; rep++) {
        uint64_t sum = 0, done = 0;
        double t0 = cpu_thread_now(), t;
        do {
            sum = 0; /* of one pass */
            for (size_t i = 0; i < c->n; i++) {
                if (eddy__avro_decode(plan, c->buf + c->off[i], c->off[i + 1] - c->off[i], &arena,
                                      row, 0, err, sizeof(err)))
                    die("decode", err);
                if (nf == 8) { /* evolved: compare the v1 columns */
                    eddy_value_t v1[7] = {row[0], row[1], row[2], row[4], row[5], row[6], row[7]};
                    v1[2].u.i = (int64_t)row[2].u.d;
                    v1[2].type = EDDY_TYPE_INT;
                    sum += row_sum(v1, 7) + row[3].len;
                } else {
                    sum += row_sum(row, nf);
                }
            }
            done += c->n;
            t = cpu_thread_now() - t0;
        } while (t < min_cpu);
        double rate = (double)done / t;
        if (rate > best.rate)
            best = (result_t){.rate = rate, .cpu = t, .sum = sum};
    }
    eddy_arena_free(&arena);
    eddy__avro_plan_destroy(plan);
    eddy__avro_schema_destroy(w);
    eddy__avro_schema_destroy(r);
    return best;
}

int main(int argc, char **argv) {
    size_t n = 1000000;
    double min_cpu = 0.3;
    const char *results = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--records") && i + 1 < argc)
            n = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--min-cpu") && i + 1 < argc)
            min_cpu = atof(argv[++i]);
        else if (!strcmp(argv[i], "--results-dir") && i + 1 < argc)
            results = argv[++i];
        else {
            fprintf(stderr, "usage: avro_bench [--records N] [--min-cpu S] [--results-dir DIR]\n");
            return 2;
        }
    }
    if (n < 1)
        n = 1;
    corpus_t c;
    encode_bids(&c, n);
    double avg_bytes = (double)c.off[n] / (double)n;
    result_t g = run_generic(&c, min_cpu);
    result_t p = run_plan(&c, BID_V1, min_cpu);
    result_t e = run_plan(&c, BID_V2, min_cpu);
    /* every bid's currency default adds 3 to the evolved sum */
    if (g.sum != p.sum || e.sum != p.sum + 3 * (uint64_t)n) {
        fprintf(stderr, "avro_bench: checksums differ: generic %llu resolved %llu evolved %llu\n",
                (unsigned long long)g.sum, (unsigned long long)p.sum, (unsigned long long)e.sum);
        return 1;
    }
    double l[1] = {-1};
    getloadavg(l, 1);
    char json[1024];
    snprintf(json, sizeof(json),
             "{\n  \"records\": %zu,\n  \"avg_record_bytes\": %.1f,\n"
             "  \"generic_records_per_cpu_second\": %.0f,\n"
             "  \"resolved_records_per_cpu_second\": %.0f,\n"
             "  \"evolved_records_per_cpu_second\": %.0f,\n"
             "  \"resolved_over_generic\": %.2f,\n"
             "  \"resolved_mb_per_cpu_second\": %.0f,\n"
             "  \"target_resolved_records_per_cpu_second\": 20000000,\n"
             "  \"loadavg1\": %.2f\n}\n",
             n, avg_bytes, g.rate, p.rate, e.rate, p.rate / g.rate, p.rate * avg_bytes / 1e6,
             l[0]);
    fputs(json, stdout);
    if (results) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/avro.json", results);
        FILE *f = fopen(path, "w");
        if (!f || fputs(json, f) < 0 || fclose(f))
            die(path, "cannot write");
        printf("wrote %s\n", path);
    }
    free(c.buf);
    free(c.off);
    return 0;
}

/*
 * bench/nexmark --kafka-sustain: the Kafka queries read ONE long pass of
 * --events bids with one consumer group, as a long-running instance does,
 * instead of passes over a topic that holds only what the mock cluster
 * keeps (about 5 MiB a partition, the oldest record sets dropped past it).
 *
 * The broker process keeps a fresh topic (one per query) topped up while
 * the instance reads it. The bids are Nexmark's: the loader reads back the
 * Avro bids that kafka-load.yaml wrote to nexmark-bids (the generator's
 * bids, in the registry's wire format) and sends them again and again,
 * sorted by event time, each round with dateTime moved on by the span of
 * the templates and the auction ids by their range (new auctions as time
 * goes, as the generator makes them), so every partition is in event-time
 * order and every window of q5 sees a bid stream like the generator's.
 * Bids go to the partitions round robin (bid g to partition g % P), so
 * partition p holds total/P bids (one more for p < total % P).
 *
 * Pacing: the measured child reports each partition's position (the next
 * offset it will process, eddy_engine_source_lag) on a pipe every time it
 * moves (the child looks every 2 ms). The loader keeps each partition at
 * most CAP bids ahead of that position, CAP = --kafka-bids / partitions
 * (23,000 by default: what the passes mode puts in a partition and checks
 * is kept whole), so no record the instance has not read is ever past the
 * mock's retention. A pipe rather than the group's committed offsets:
 * commits come once a commit round, so committed offsets trail the
 * position by up to a round's worth of bids, which at 1M bids/s is most
 * of what the mock keeps; the position is exact and costs the child a
 * look at its engine's counters.
 *
 * Checks (the bench fails loudly): the child's events read equal the bids
 * produced, and at the end each partition's position is exactly what was
 * produced into it; a dropped record makes librdkafka skip ahead (offset
 * out of range), so the count falls short, and a read that stalls for 30 s
 * fails too. The loader checks that every bid was delivered.
 *
 * The loader's CPU is the broker process's and not counted, but it shares
 * the machine's cores with the instance (reported as loader CPU-s).
 */
#define _GNU_SOURCE
#include "nexmark_sustain.h"

#include "connectors/kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SUS_CHUNK 512

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t a_off, a_end; /* the auction's varint */
    size_t t_off, t_end; /* dateTime's varint */
    int64_t auction, ts;
    size_t seq; /* read order: ties of ts keep it */
} tmpl_t;

struct sus_loader {
    char bootstrap[512];
    int partitions;
    unsigned long long cap;
    tmpl_t *t;
    size_t nt;
    size_t slot;               /* room for the longest bid made from a template */
    uint8_t *arena;            /* SUS_CHUNK slots a partition, the bids of one top-up */
    rd_kafka_message_t *batch; /* SUS_CHUNK a partition */
    int64_t tspan, aspan;
    /* the pass under way */
    bool active;
    rd_kafka_t *prod;
    rd_kafka_topic_t *rkt;
    unsigned long long total, produced, delivered, failed;
    unsigned long long prod_p[SUS_MAXPARTS];
    unsigned long long deliv_p[SUS_MAXPARTS]; /* delivered to the broker, by partition */
    int64_t pos[SUS_MAXPARTS];
    /* starvation: time from the first position report until every bid was
     * read, and the part of it with fewer than SUS_STARVED bids delivered
     * and not yet read (time-weighted), with the mean of that count */
    int64_t seen_ns, read_ns, starved_ns;
    double waiting_sum; /* bids waiting x ns */
    double cpu0;
    char err[512];
};

/* ------------------------------------------------------------ Avro */

static int rd_long(const uint8_t *p, size_t len, size_t *off, int64_t *v) {
    uint64_t u = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*off >= len)
            return -1;
        uint8_t b = p[(*off)++];
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return 0;
        }
    }
    return -1;
}

static size_t wr_long(uint8_t *p, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        p[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (uint8_t)u;
    return n;
}

static int skip_string(const uint8_t *p, size_t len, size_t *off) {
    int64_t n;
    if (rd_long(p, len, off, &n) || n < 0 || (uint64_t)n > len - *off)
        return -1;
    *off += (size_t)n;
    return 0;
}

/* A bid as kafka-load.yaml writes it: magic 0, schema id, then auction,
 * bidder, price (long), channel, url (string), dateTime (long), extra
 * (string), nothing after. */
static int parse_bid(tmpl_t *t) {
    const uint8_t *p = t->buf;
    size_t len = t->len, off = 5;
    int64_t v;
    if (len < 5 || p[0] != 0)
        return -1;
    t->a_off = off;
    if (rd_long(p, len, &off, &t->auction))
        return -1;
    t->a_end = off;
    if (rd_long(p, len, &off, &v) || rd_long(p, len, &off, &v) || skip_string(p, len, &off) ||
        skip_string(p, len, &off))
        return -1;
    t->t_off = off;
    if (rd_long(p, len, &off, &t->ts))
        return -1;
    t->t_end = off;
    if (skip_string(p, len, &off) || off != len)
        return -1;
    return 0;
}

static int by_time(const void *a, const void *b) {
    const tmpl_t *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ------------------------------------------------------------ loader */

sus_loader_t *sus_loader_new(const char *bootstrap, const char *from, int partitions,
                             unsigned long long cap_per_partition, char *err, size_t err_size) {
    if (partitions < 1 || partitions > SUS_MAXPARTS) {
        snprintf(err, err_size, "--kafka-sustain takes 1 to %d partitions", SUS_MAXPARTS);
        return NULL;
    }
    sus_loader_t *l = calloc(1, sizeof(*l));
    snprintf(l->bootstrap, sizeof(l->bootstrap), "%s", bootstrap);
    l->partitions = partitions;
    l->cap = cap_per_partition;
    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", "nexmark-bench-sustain-templates", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(err, err_size, "template consumer: %s", why);
        free(l);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    unsigned long long want = 0;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, from, p, &lo, &hi, 10000);
        if (e || lo != 0) {
            snprintf(err, err_size, "topic %s partition %d: %s", from, p,
                     e ? rd_kafka_err2str(e) : "lost its first records");
            goto fail;
        }
        want += (unsigned long long)hi;
        rd_kafka_topic_partition_list_add(tl, from, p)->offset = 0;
    }
    rd_kafka_assign(rk, tl);
    l->t = calloc(want ? want : 1, sizeof(tmpl_t));
    double give_up = (double)time(NULL) + 60;
    while (l->nt < want && (double)time(NULL) < give_up) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                snprintf(err, err_size, "reading %s: %s", from, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto fail;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        tmpl_t *t = &l->t[l->nt];
        t->len = m->len;
        t->buf = malloc(m->len ? m->len : 1);
        memcpy(t->buf, m->payload, m->len);
        t->seq = l->nt++;
        rd_kafka_message_destroy(m);
        if (parse_bid(t)) {
            snprintf(err, err_size,
                     "%s offset of a partition: not a bid as kafka-load.yaml writes it "
                     "(auction, bidder, price, channel, url, dateTime, extra)",
                     from);
            goto fail;
        }
    }
    if (l->nt < want || !want) {
        snprintf(err, err_size, "read %zu of the %llu bids of %s", l->nt, want, from);
        goto fail;
    }
    qsort(l->t, l->nt, sizeof(tmpl_t), by_time);
    int64_t amin = l->t[0].auction, amax = amin;
    for (size_t i = 0; i < l->nt; i++) {
        if (l->t[i].len + 20 > l->slot) /* 20: two varints grown to 10 bytes */
            l->slot = l->t[i].len + 20;
        amin = l->t[i].auction < amin ? l->t[i].auction : amin;
        amax = l->t[i].auction > amax ? l->t[i].auction : amax;
    }
    int64_t span = l->t[l->nt - 1].ts - l->t[0].ts;
    l->tspan = span + span / (int64_t)l->nt + 1; /* one bid's spacing between rounds */
    l->aspan = amax - amin + 1;
    l->arena = malloc((size_t)partitions * SUS_CHUNK * l->slot);
    l->batch = calloc((size_t)partitions * SUS_CHUNK, sizeof(rd_kafka_message_t));
    fprintf(stderr,
            "(loader: %zu template bids spanning %lld ms of event time and %lld auctions, sent "
            "round after round moved on by that much)\n",
            l->nt, (long long)l->tspan, (long long)l->aspan);
    rd_kafka_topic_partition_list_destroy(tl);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return l;
fail:
    rd_kafka_topic_partition_list_destroy(tl);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    sus_loader_destroy(l);
    return NULL;
}

void sus_loader_destroy(sus_loader_t *l) {
    if (!l)
        return;
    for (size_t i = 0; i < l->nt; i++)
        free(l->t[i].buf);
    free(l->t);
    free(l->arena);
    free(l->batch);
    free(l);
}

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)opaque;
    sus_loader_t *l = rd_kafka_opaque(rk);
    if (m->err) {
        if (!l->failed++)
            snprintf(l->err, sizeof(l->err), "delivery to %s [%d]: %s", rd_kafka_topic_name(m->rkt),
                     (int)m->partition, rd_kafka_err2str(m->err));
    } else {
        l->delivered++;
        if (m->partition >= 0 && m->partition < SUS_MAXPARTS)
            l->deliv_p[m->partition]++;
    }
}

/* Bid g of the stream into buf (slot bytes at least); its length. */
static size_t make_bid(const sus_loader_t *l, unsigned long long g, uint8_t *buf) {
    const tmpl_t *t = &l->t[g % l->nt];
    int64_t round = (int64_t)(g / l->nt);
    size_t n = t->a_off;
    memcpy(buf, t->buf, t->a_off);
    n += wr_long(buf + n, t->auction + round * l->aspan);
    memcpy(buf + n, t->buf + t->a_end, t->t_off - t->a_end);
    n += t->t_off - t->a_end;
    n += wr_long(buf + n, t->ts + round * l->tspan);
    memcpy(buf + n, t->buf + t->t_end, t->len - t->t_end);
    return n + t->len - t->t_end;
}

/* Produce up to `max` bids, as far as each partition's room allows, in
 * one rd_kafka_produce_batch() a partition and SUS_CHUNK bids (one
 * rd_kafka_produce() a bid cost the broker process about twice the CPU:
 * 4.4 against 2.3 CPU-s for 3M bids, and the instance the core it needs). */
static void top_up(sus_loader_t *l, unsigned long long max) {
    int np = l->partitions;
    while (l->produced < l->total && max > 0 && !l->failed) {
        int nb[SUS_MAXPARTS] = {0};
        unsigned long long k = 0;
        bool full = false; /* a partition is CAP ahead: the rest waits */
        while (l->produced + k < l->total && k < max) {
            unsigned long long g = l->produced + k;
            int p = (int)(g % (unsigned long long)np);
            if ((int64_t)(l->prod_p[p] + (unsigned long long)nb[p]) - l->pos[p] >=
                (int64_t)l->cap) {
                full = true;
                break;
            }
            if (nb[p] == SUS_CHUNK)
                break;
            size_t at = (size_t)p * SUS_CHUNK + (size_t)nb[p];
            rd_kafka_message_t *m = &l->batch[at];
            memset(m, 0, sizeof(*m));
            m->payload = l->arena + at * l->slot;
            m->len = make_bid(l, g, m->payload);
            nb[p]++;
            k++;
        }
        for (int p = 0; p < np && !l->failed; p++) {
            rd_kafka_message_t *ms = &l->batch[(size_t)p * SUS_CHUNK];
            if (nb[p] &&
                rd_kafka_produce_batch(l->rkt, p, RD_KAFKA_MSG_F_COPY, ms, nb[p]) != nb[p]) {
                for (int i = 0; i < nb[p]; i++)
                    if (ms[i].err) {
                        l->failed++;
                        snprintf(l->err, sizeof(l->err), "produce: %s",
                                 rd_kafka_err2str(ms[i].err));
                        break;
                    }
            }
            l->prod_p[p] += (unsigned long long)nb[p];
        }
        l->produced += k;
        max -= k;
        if (full || !k)
            return;
    }
}

static void begin(sus_loader_t *l, const sus_msg_t *m, sus_reply_t *r) {
    char why[256];
    if (m->partitions != l->partitions) {
        snprintf(r->err, sizeof(r->err), "%d partitions asked, the loader has %d", m->partitions,
                 l->partitions);
        return;
    }
    if (eddy__kafka_embedded_topic(m->topic, l->partitions, r->err, sizeof(r->err)))
        return;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", l->bootstrap, NULL, 0);
    rd_kafka_conf_set(conf, "linger.ms", "10", NULL, 0);
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "2000000", NULL, 0);
    rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", "1048576", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, l);
    l->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!l->prod) {
        snprintf(r->err, sizeof(r->err), "loader producer: %s", why);
        return;
    }
    l->rkt = rd_kafka_topic_new(l->prod, m->topic, NULL);
    l->total = m->total;
    l->produced = l->delivered = l->failed = 0;
    memset(l->prod_p, 0, sizeof(l->prod_p));
    memset(l->deliv_p, 0, sizeof(l->deliv_p));
    memset(l->pos, 0, sizeof(l->pos));
    l->seen_ns = l->read_ns = l->starved_ns = 0;
    l->waiting_sum = 0;
    l->err[0] = 0;
    l->cpu0 = cpu_now();
    l->active = true;
    /* the first CAP bids of each partition are there before the group joins */
    top_up(l, l->total);
    rd_kafka_flush(l->prod, 30000);
    if (l->failed) {
        snprintf(r->err, sizeof(r->err), "%s", l->err);
        return;
    }
    r->ok = 1;
}

static void end(sus_loader_t *l, sus_reply_t *r) {
    if (!l->active) {
        snprintf(r->err, sizeof(r->err), "no sustained pass under way");
        return;
    }
    rd_kafka_flush(l->prod, 30000);
    r->produced = l->produced;
    r->delivered = l->delivered;
    r->broker_cpu = cpu_now() - l->cpu0;
    if (l->read_ns > 0) {
        r->starved = (double)l->starved_ns / (double)l->read_ns;
        r->waiting = l->waiting_sum / (double)l->read_ns;
    }
    if (l->failed)
        snprintf(r->err, sizeof(r->err), "%s", l->err);
    else if (l->produced != l->total || l->delivered != l->total)
        snprintf(r->err, sizeof(r->err), "the loader produced %llu and delivered %llu of %llu bids",
                 l->produced, l->delivered, l->total);
    else
        r->ok = 1;
    rd_kafka_topic_destroy(l->rkt);
    rd_kafka_destroy(l->prod);
    l->rkt = NULL;
    l->prod = NULL;
    l->active = false;
}

/* Account the time since the last look to starved or fed, by how many
 * delivered bids were still unread then (the instance's reported
 * positions trail by up to its 2 ms reporting period, so this
 * undercounts starvation rather than inventing it). */
static void watch_starvation(sus_loader_t *l) {
    unsigned long long read = 0, waiting = 0;
    for (int p = 0; p < l->partitions; p++) {
        unsigned long long pos = l->pos[p] > 0 ? (unsigned long long)l->pos[p] : 0;
        read += pos;
        waiting += l->deliv_p[p] > pos ? l->deliv_p[p] - pos : 0;
    }
    int64_t now = eddy__now_ns();
    if (!read || read >= l->total) {
        l->seen_ns = 0; /* before the first record and after the last */
        return;
    }
    if (l->seen_ns) {
        int64_t dt = now - l->seen_ns;
        l->read_ns += dt;
        l->waiting_sum += (double)waiting * (double)dt;
        if (waiting < SUS_STARVED)
            l->starved_ns += dt;
    }
    l->seen_ns = now;
}

void sus_loader_serve(sus_loader_t *l, int cmd_fd, int reply_fd, int hold_fd) {
    fcntl(cmd_fd, F_SETFL, fcntl(cmd_fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        struct pollfd pf[2] = {{.fd = cmd_fd, .events = POLLIN}, {.fd = hold_fd, .events = POLLIN}};
        /* while a pass is under way, serve the producer at least every ms */
        if (poll(pf, 2, l->active ? 1 : -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break; /* the parent closed hold (or died) */
        sus_msg_t m;
        ssize_t n;
        while ((n = read(cmd_fd, &m, sizeof(m))) == (ssize_t)sizeof(m)) {
            sus_reply_t r = {0};
            if (m.type == SUS_PROGRESS) {
                for (int p = 0; p < l->partitions && p < m.partitions; p++)
                    if (m.pos[p] > l->pos[p])
                        l->pos[p] = m.pos[p];
                continue;
            }
            if (m.type == SUS_BEGIN)
                begin(l, &m, &r);
            else if (m.type == SUS_END)
                end(l, &r);
            else
                snprintf(r.err, sizeof(r.err), "unknown command %d", (int)m.type);
            if (write(reply_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
                return;
        }
        if (n == 0)
            break;
        if (l->active) {
            watch_starvation(l);
            top_up(l, 20000);
            rd_kafka_poll(l->prod, 0);
        }
    }
    if (l->active) {
        sus_reply_t r = {0};
        end(l, &r);
    }
}

/* ------------------------------------------------------------- child */

unsigned long long sus_child_progress(sus_child_t *c, eddy_engine_t *eng) {
    eddy_source_lag_t lag[256];
    int n = eddy_engine_source_lag(eng, lag, 256);
    for (int i = 0; i < n && i < 256; i++) {
        int p = lag[i].partition;
        if (p >= 0 && p < c->partitions && lag[i].topic && !strcmp(lag[i].topic, c->topic) &&
            lag[i].position > c->pos[p])
            c->pos[p] = lag[i].position;
    }
    unsigned long long sum = 0;
    bool moved = false;
    for (int p = 0; p < c->partitions; p++) {
        sum += c->pos[p] > 0 ? (unsigned long long)c->pos[p] : 0;
        moved |= c->pos[p] != c->sent[p];
    }
    if (moved) {
        sus_msg_t m = {.type = SUS_PROGRESS, .partitions = c->partitions};
        memcpy(m.pos, c->pos, sizeof(m.pos));
        if (write(c->fd, &m, sizeof(m)) == (ssize_t)sizeof(m))
            memcpy(c->sent, c->pos, sizeof(c->sent));
    }
    return sum;
}

int sus_child_check(const sus_child_t *c, unsigned long long events_in, char *err,
                    size_t err_size) {
    unsigned long long np = (unsigned long long)c->partitions;
    for (int p = 0; p < c->partitions; p++) {
        unsigned long long want = c->total / np + ((unsigned long long)p < c->total % np);
        if (c->pos[p] != (int64_t)want) {
            snprintf(err, err_size,
                     "sustained pass: topic %s partition %d ends at offset %lld, %llu bids were "
                     "produced into it",
                     c->topic, p, (long long)c->pos[p], want);
            return -1;
        }
    }
    if (events_in != c->total) {
        snprintf(err, err_size,
                 "sustained pass: read %llu bids of the %llu produced (records dropped by the "
                 "mock before they were read, or read twice)",
                 events_in, c->total);
        return -1;
    }
    return 0;
}

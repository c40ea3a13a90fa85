/*
 * The <application>-instances topic (connectors/instances.h). Record value:
 * "eddy-instance 2 <generation> <updated_ms> <endpoint or -> <tasks,...>",
 * generation the consumer group generation of the assignment the tasks
 * came with (-1: not known). Version 1 records (generation a count of the
 * instance's records) are read with generation -1.
 * A thread compares the engine's open (or restoring) tasks with what it published every
 * 100 ms and publishes on a change, and reads the topic (partition 0, from
 * the beginning, never in a group) into a table of the last record per
 * instance.
 */
#include "connectors/instances.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/kafka.h"
#include "plan.h"

eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng);

#define MAX_INST 256

typedef struct {
    char id[40];
    char endpoint[256];
    uint64_t *tasks; /* bit set */
    int64_t generation, updated_ms;
    int64_t offset; /* of the record in the topic */
} inst_t;

struct eddy_instances_s {
    eddy_engine_t *eng;
    int ntasks, words;
    char *topic;
    char self[24];
    char endpoint[256];
    rd_kafka_t *prod, *cons;
    bool prod_emb, cons_emb;
    pthread_t thr;
    atomic_bool stop;
    pthread_mutex_t lock; /* insts */
    inst_t insts[MAX_INST];
    int ninst;
    uint64_t *published;
    bool published_once;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void publish(eddy_instances_t *in, const uint64_t *tasks) {
    char val[4096];
    int n = snprintf(val, sizeof(val), "eddy-instance 2 %lld %lld %s ",
                     (long long)eddy__engine_group_generation(in->eng), (long long)wall_ms(),
                     in->endpoint[0] ? in->endpoint : "-");
    in->published_once = true;
    bool first = true;
    for (int t = 0; t < in->ntasks && n < (int)sizeof(val) - 16; t++)
        if (tasks[t / 64] >> (t % 64) & 1) {
            n += snprintf(val + n, sizeof(val) - (size_t)n, "%s%d", first ? "" : ",", t);
            first = false;
        }
    if (first)
        n += snprintf(val + n, sizeof(val) - (size_t)n, "-");
    rd_kafka_producev(in->prod, RD_KAFKA_V_TOPIC(in->topic), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_KEY(in->self, strlen(in->self)), RD_KAFKA_V_VALUE(val, (size_t)n),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_flush(in->prod, 5000);
}

static void take(eddy_instances_t *in, const rd_kafka_message_t *m) {
    if (!m->key || m->key_len == 0 || m->key_len >= 40 || !m->payload)
        return;
    char val[4096];
    size_t len = m->len < sizeof(val) - 1 ? m->len : sizeof(val) - 1;
    memcpy(val, m->payload, len);
    val[len] = 0;
    long long gen = 0, ts = 0;
    int version = 0;
    char ep[256], tasks[3800];
    if (sscanf(val, "eddy-instance %d %lld %lld %255s %3799s", &version, &gen, &ts, ep, tasks) !=
            5 ||
        version < 1)
        return;
    if (version == 1 || gen < 0) /* a count of records, not the group's */
        gen = -1;
    pthread_mutex_lock(&in->lock);
    inst_t *x = NULL;
    for (int i = 0; i < in->ninst && !x; i++)
        if (strlen(in->insts[i].id) == m->key_len && !memcmp(in->insts[i].id, m->key, m->key_len))
            x = &in->insts[i];
    if (!x && in->ninst < MAX_INST) {
        x = &in->insts[in->ninst++];
        memcpy(x->id, m->key, m->key_len);
        x->id[m->key_len] = 0;
        x->tasks = eddy_calloc((size_t)in->words, sizeof(uint64_t));
    }
    if (x) {
        snprintf(x->endpoint, sizeof(x->endpoint), "%s", strcmp(ep, "-") ? ep : "");
        x->generation = gen;
        x->updated_ms = ts;
        x->offset = m->offset;
        memset(x->tasks, 0, sizeof(uint64_t) * (size_t)in->words);
        for (char *s = tasks; *s && *s != '-';) {
            long t = strtol(s, &s, 10);
            if (t >= 0 && t < in->ntasks)
                x->tasks[t / 64] |= 1ULL << (t % 64);
            if (*s == ',')
                s++;
            else
                break;
        }
    }
    pthread_mutex_unlock(&in->lock);
}

static void open_tasks(eddy_instances_t *in, uint64_t *out) {
    memset(out, 0, sizeof(uint64_t) * (size_t)in->words);
    for (int t = 0; t < in->ntasks; t++)
        if (eddy__engine_task_active(in->eng, t) || eddy__engine_task_opening(in->eng, t))
            out[t / 64] |= 1ULL << (t % 64);
}

/* The newest claim on a task: by the consumer group generation of the
 * assignments when every claimant's record carries a usable one (the
 * group's counter: a lingering record of an instance that lost the task,
 * or of a zombie, has an older one), else by the records' order in the
 * topic (the broker's, one partition); never the instances' clocks. A
 * generation above this instance's own is from an earlier life of the
 * group (it was deleted and made again: counters restart), so it is not
 * usable; nor is -1 (not known, or a version 1 record). Deciding per task
 * with one rule keeps the order consistent whatever the claimants. */
static bool gen_usable(int64_t g, int64_t cur) { return g >= 0 && (cur < 0 || g <= cur); }

static bool newer(const inst_t *x, const inst_t *y, bool by_gen) {
    if (by_gen && x->generation != y->generation)
        return x->generation > y->generation;
    return x->offset > y->offset;
}

/* The instance with the newest claim on task (this one too; skip: an
 * instance id to leave out, or NULL), or NULL. Under in->lock. */
static const inst_t *claimant(const eddy_instances_t *in, int task, const char *skip) {
    int64_t cur = eddy__engine_group_generation(in->eng);
    bool by_gen = true;
    for (int i = 0; i < in->ninst; i++) {
        const inst_t *x = &in->insts[i];
        if ((x->tasks[task / 64] >> (task % 64) & 1) && (!skip || strcmp(x->id, skip)) &&
            !gen_usable(x->generation, cur))
            by_gen = false;
    }
    const inst_t *best = NULL;
    for (int i = 0; i < in->ninst; i++) {
        const inst_t *x = &in->insts[i];
        if ((x->tasks[task / 64] >> (task % 64) & 1) && (!skip || strcmp(x->id, skip)) &&
            (!best || newer(x, best, by_gen)))
            best = x;
    }
    return best;
}

static const inst_t *owner_of(const eddy_instances_t *in, int task) {
    return claimant(in, task, NULL);
}

/* Standby replicas (docs/scaleout.md): the copies of a task are kept by
 * the `replicas` instances that follow its owner in instance-id order
 * among the instances that own a task (an instance whose every task went
 * to others, such as a dead one, is left out; so is one that runs none).
 * Every instance computes the same from the same view. */
static int standby_choice(void *opaque, int task, int replicas) {
    eddy_instances_t *in = opaque;
    if (task < 0 || task >= in->ntasks)
        return -1;
    pthread_mutex_lock(&in->lock);
    const inst_t *own = owner_of(in, task);
    bool member[MAX_INST] = {false};
    for (int t = 0; own && t < in->ntasks; t++) {
        const inst_t *o = owner_of(in, t);
        if (o)
            member[o - in->insts] = true;
    }
    /* the members after the owner, in id order, wrapping round */
    int r = -1;
    if (own) {
        r = 0;
        const char *cur = own->id;
        for (int k = 0; k < replicas; k++) {
            const inst_t *next = NULL, *first = NULL;
            for (int i = 0; i < in->ninst; i++) {
                const inst_t *x = &in->insts[i];
                if (!member[i])
                    continue;
                if (!first || strcmp(x->id, first->id) < 0)
                    first = x;
                if (strcmp(x->id, cur) > 0 && (!next || strcmp(x->id, next->id) < 0))
                    next = x;
            }
            next = next ? next : first;
            if (!next || next == own)
                break; /* fewer members than replicas + 1 */
            if (!strcmp(next->id, in->self)) {
                r = 1;
                break;
            }
            cur = next->id;
        }
    }
    pthread_mutex_unlock(&in->lock);
    return r;
}

static void *main_loop(void *arg) {
    eddy_instances_t *in = arg;
    uint64_t *now = eddy_calloc((size_t)in->words, sizeof(uint64_t));
    while (!atomic_load(&in->stop)) {
        open_tasks(in, now);
        if (!in->published_once ||
            memcmp(now, in->published, sizeof(uint64_t) * (size_t)in->words)) {
            memcpy(in->published, now, sizeof(uint64_t) * (size_t)in->words);
            publish(in, now);
        }
        for (int i = 0; i < 100; i++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(in->cons, i ? 0 : 100);
            if (!m)
                break;
            if (!m->err)
                take(in, m);
            rd_kafka_message_destroy(m);
        }
    }
    eddy_free(now);
    return NULL;
}

static rd_kafka_t *client(const eddy_kprops_t *p, rd_kafka_type_t type, bool *emb, char *errstr,
                          size_t n) {
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(p, emb, errstr, n);
    if (!conf)
        return NULL;
    rd_kafka_conf_set(conf, "client.id", "eddy-instances", NULL, 0);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "20", NULL, 0);
        /* never joins: a group id is only required by librdkafka */
        rd_kafka_conf_set(conf, "group.id", "eddy-instances-reader", NULL, 0);
    } else {
        rd_kafka_conf_set(conf, "linger.ms", "0", NULL, 0);
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        eddy__seterr(errstr, n, "instances: %s", why);
    }
    return rk;
}

static void free_in(eddy_instances_t *in) {
    if (in->cons) {
        rd_kafka_consumer_close(in->cons);
        rd_kafka_destroy(in->cons);
    }
    if (in->prod)
        rd_kafka_destroy(in->prod);
    if (in->cons_emb)
        eddy__kafka_embedded_release();
    if (in->prod_emb)
        eddy__kafka_embedded_release();
    for (int i = 0; i < in->ninst; i++)
        eddy_free(in->insts[i].tasks);
    pthread_mutex_destroy(&in->lock);
    eddy_free(in->published);
    eddy_free(in->topic);
    eddy_free(in);
}

eddy_instances_t *eddy__instances_start(eddy_topology_t *topo, eddy_engine_t *eng,
                                        const char *endpoint, char *errstr, size_t errstr_size) {
    eddy_plan_t *plan = eddy__engine_plan(eng);
    eddy_kprops_t props = {0};
    if (eddy__kprops_from_cnode(&props, eddy__cnode_get(eddy_topology_root(topo), "kafka"), errstr,
                                errstr_size)) {
        eddy__kprops_free(&props);
        return NULL;
    }
    eddy_instances_t *in = eddy_calloc(1, sizeof(*in));
    pthread_mutex_init(&in->lock, NULL);
    in->eng = eng;
    in->ntasks = plan->ntasks;
    in->words = (plan->ntasks + 63) / 64 + 1;
    in->published = eddy_calloc((size_t)in->words, sizeof(uint64_t));
    in->topic = eddy_asprintf("%s-instances", plan->application);
    snprintf(in->self, sizeof(in->self), "%s", plan->instance_id);
    snprintf(in->endpoint, sizeof(in->endpoint), "%s", endpoint ? endpoint : "");
    eddy_err_t e = eddy__kafka_ensure_topic(&props, in->topic, 1, true, "cleanup.policy=compact",
                                            "instances", 15000, errstr, errstr_size);
    if (!e && (!(in->prod = client(&props, RD_KAFKA_PRODUCER, &in->prod_emb, errstr,
                                   errstr_size)) ||
               !(in->cons = client(&props, RD_KAFKA_CONSUMER, &in->cons_emb, errstr,
                                   errstr_size))))
        e = EDDY_ERR_CONFIG;
    eddy__kprops_free(&props);
    if (!e) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, in->topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (rd_kafka_assign(in->cons, l)) {
            eddy__seterr(errstr, errstr_size, "instances: cannot read topic '%s'", in->topic);
            e = EDDY_ERR_IO;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (!e && pthread_create(&in->thr, NULL, main_loop, in)) {
        eddy__seterr(errstr, errstr_size, "instances: cannot start a thread");
        e = EDDY_ERR_STATE;
    }
    if (e) {
        free_in(in);
        return NULL;
    }
    eddy__engine_set_standby_choice(eng, standby_choice, in);
    return in;
}

void eddy__instances_stop(eddy_instances_t *in) {
    if (!in)
        return;
    eddy__engine_set_standby_choice(in->eng, NULL, NULL);
    atomic_store(&in->stop, true);
    pthread_join(in->thr, NULL);
    memset(in->published, 0, sizeof(uint64_t) * (size_t)in->words);
    publish(in, in->published); /* no tasks: route nothing here any more */
    free_in(in);
}

bool eddy__instances_owner(eddy_instances_t *in, int task, char *id, size_t idsz, char *endpoint,
                           size_t epsz) {
    if (!in || task < 0 || task >= in->ntasks)
        return false;
    pthread_mutex_lock(&in->lock);
    const inst_t *best = claimant(in, task, in->self);
    if (best) {
        snprintf(id, idsz, "%s", best->id);
        snprintf(endpoint, epsz, "%s", best->endpoint);
    }
    pthread_mutex_unlock(&in->lock);
    return best != NULL;
}

char *eddy__instances_json(eddy_instances_t *in) {
    eddy_buf_t b = {0};
    eddy_buf_putc(&b, '[');
    pthread_mutex_lock(&in->lock);
    for (int i = 0; i < in->ninst; i++) {
        const inst_t *x = &in->insts[i];
        char head[600];
        int n = snprintf(head, sizeof(head),
                         "%s{\"instance\":\"%s\",\"endpoint\":\"%s\",\"generation\":%lld,"
                         "\"updated_ms\":%lld,\"self\":%s,\"tasks\":[",
                         i ? "," : "", x->id, x->endpoint, (long long)x->generation,
                         (long long)x->updated_ms, strcmp(x->id, in->self) ? "false" : "true");
        eddy_buf_put(&b, head, (size_t)n);
        bool first = true;
        for (int t = 0; t < in->ntasks; t++)
            if (x->tasks[t / 64] >> (t % 64) & 1) {
                n = snprintf(head, sizeof(head), "%s%d", first ? "" : ",", t);
                eddy_buf_put(&b, head, (size_t)n);
                first = false;
            }
        eddy_buf_put(&b, "]}", 2);
    }
    pthread_mutex_unlock(&in->lock);
    eddy_buf_put(&b, "]", 2); /* with the terminator */
    return b.p;
}

bool eddy__instances_wanted(eddy_engine_t *eng) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    for (int i = 0; i < p->nsources; i++)
        if (p->sources[i].ops->start) /* a consumer group spreads its partitions */
            return true;
    return false;
}

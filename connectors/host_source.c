/*
 * Host source: the embedding program pushes records with eddy_engine_push()
 * from any thread; the task owning the partition drains them. Each
 * partition is a bounded FIFO (queue.max), so a fast producer gets
 * EDDY_ERR_FULL (backpressure) instead of growing memory without bound;
 * with memory.max.bytes its bytes are bounded too (the source's share).
 * An empty queue makes the partition idle (it takes part in the idle
 * timeout of watermarks); eddy_engine_end_input() ends it.
 */
#include "cfg.h"
#include "plan.h"

#include <pthread.h>

typedef struct hrec_s {
    struct hrec_s *next;
    int64_t ts_ms;
    int64_t offset;
    size_t bytes;       /* the allocation, charged to the queue */
    eddy_value_t *vals; /* strings follow in the same allocation */
} hrec_t;

typedef struct {
    pthread_mutex_t lock;
    hrec_t *head, *tail;
    int64_t count;
    int64_t bytes;
    int64_t next_offset;
    bool ended;
} hqueue_t;

typedef struct {
    eddy_schema_t *schema;  /* borrowed from the stream */
    int partitions;
    int64_t queue_max;
    hqueue_t *q;            /* [partitions]: the one mutable part, locked */
} host_conf_t;

static const char *const host_keys[] = {"name", "type", "watermark", "schema", "partitions",
                                        "queue.max", NULL};

static eddy_err_t host_compile(eddy_srcdef_t *def, const eddy_cnode_t *m, char *errstr,
                               size_t errstr_size) {
    host_conf_t *c = eddy_calloc(1, sizeof(*c));
    def->conf = c;
    int64_t parts = 1;
    c->queue_max = 100000;
    eddy_err_t err;
    if ((err = eddy__cfg_check_keys(m, "host source", host_keys, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "partitions", false, 1, 1024, &parts, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "queue.max", false, 1, INT64_MAX, &c->queue_max, errstr,
                             errstr_size)))
        return err;
    const eddy_cnode_t *sn = eddy__cnode_get(m, "schema");
    if (!sn)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "host source '%s': missing required key 'schema'", def->name);
    eddy_schema_t *s = eddy__schema_from_cnode(sn, errstr, errstr_size);
    if (!s)
        return EDDY_ERR_CONFIG;
    c->schema = s;
    c->partitions = (int)parts;
    c->q = eddy_calloc((size_t)parts, sizeof(*c->q));
    for (int i = 0; i < parts; i++)
        pthread_mutex_init(&c->q[i].lock, NULL);
    def->partitions = (int)parts;
    eddy__srcdef_add_stream(def, NULL, s);
    return EDDY_OK;
}

static void host_free_conf(void *conf) {
    host_conf_t *c = conf;
    for (int i = 0; c->q && i < c->partitions; i++) {
        hrec_t *r = c->q[i].head;
        while (r) {
            hrec_t *next = r->next;
            eddy_free(r);
            r = next;
        }
        pthread_mutex_destroy(&c->q[i].lock);
    }
    eddy_free(c->q);
    eddy_free(c);
}

typedef struct {
    host_conf_t *c;
    int partition;
} host_state_t;

static eddy_err_t host_open(const eddy_srcdef_t *def, int partition, void **statep, char *errstr,
                            size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    host_state_t *st = eddy_calloc(1, sizeof(*st));
    st->c = def->conf;
    st->partition = partition;
    *statep = st;
    return EDDY_OK;
}

static void host_close(void *state) { eddy_free(state); }

static eddy_err_t host_poll(void *state, eddy_src_out_t *out, int max, bool *idle) {
    host_state_t *st = state;
    hqueue_t *q = &st->c->q[st->partition];
    pthread_mutex_lock(&q->lock);
    hrec_t *head = q->head;
    hrec_t *last = NULL;
    int n = 0;
    int64_t bytes = 0;
    for (hrec_t *r = head; r && n < max; r = r->next) {
        last = r;
        bytes += (int64_t)r->bytes;
        n++;
    }
    if (last) {
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
        q->count -= n;
        q->bytes -= bytes;
    }
    bool ended = q->ended && !q->head;
    pthread_mutex_unlock(&q->lock);
    eddy_batch_t *b = out->batches[0];
    int nf = st->c->schema->nfields;
    for (hrec_t *r = head; n && r;) {
        hrec_t *next = r->next;
        if (b) {
            eddy_rec_t *o = eddy_batch_push(b);
            memset(o, 0, sizeof(*o));
            /* Copy into the arena: the queue entry is freed now. */
            o->vals = eddy_arena_alloc(b->arena, sizeof(eddy_value_t) * (size_t)nf);
            for (int i = 0; i < nf; i++) {
                o->vals[i] = r->vals[i];
                if ((r->vals[i].type == EDDY_TYPE_STRING || r->vals[i].type == EDDY_TYPE_BYTES) &&
                    r->vals[i].len)
                    o->vals[i].u.s = eddy_arena_strndup(b->arena, r->vals[i].u.s, r->vals[i].len);
            }
            o->ts_ms = r->ts_ms;
            o->partition = st->partition;
            o->offset = r->offset;
        }
        eddy_free(r);
        r = next;
    }
    eddy__task_count_in(out->task, (uint64_t)n);
    if (!n && !ended)
        *idle = true;
    return ended ? EDDY_ERR_EOF : EDDY_OK;
}

const eddy_src_ops_t eddy__src_host = {
    .abi = EDDY_OP_ABI,
    .name = "host",
    .compile = host_compile,
    .free_conf = host_free_conf,
    .open = host_open,
    .poll = host_poll,
    .close = host_close,
};

/* Called by eddy_engine_push() with the source's definition. */
eddy_err_t eddy__host_push(const eddy_srcdef_t *def, int partition, const eddy_value_t *values,
                           int64_t ts_ms) {
    if (def->ops != &eddy__src_host)
        return EDDY_ERR_INVAL;
    host_conf_t *c = def->conf;
    if (partition < 0 || partition >= c->partitions || !values)
        return EDDY_ERR_INVAL;
    const eddy_schema_t *s = c->schema;
    size_t extra = 0;
    for (int i = 0; i < s->nfields; i++) {
        const eddy_value_t *v = &values[i];
        if (v->type == EDDY_TYPE_NULL) {
            if (!s->fields[i].nullable)
                return EDDY_ERR_INVAL;
            continue;
        }
        if (v->type != (uint8_t)s->fields[i].type)
            return EDDY_ERR_INVAL;
        if (v->type == EDDY_TYPE_STRING || v->type == EDDY_TYPE_BYTES)
            extra += v->len;
    }
    hqueue_t *q = &c->q[partition];
    pthread_mutex_lock(&q->lock);
    bool full = q->count >= c->queue_max || (def->queue_bytes && q->count &&
                                              q->bytes >= def->queue_bytes);
    eddy_err_t err = q->ended ? EDDY_ERR_STATE : full ? EDDY_ERR_FULL : 0;
    pthread_mutex_unlock(&q->lock);
    if (err)
        return err;
    size_t vsz = sizeof(eddy_value_t) * (size_t)s->nfields;
    hrec_t *r = eddy_malloc(sizeof(*r) + vsz + extra);
    r->next = NULL;
    r->bytes = sizeof(*r) + vsz + extra;
    r->ts_ms = ts_ms;
    r->vals = (eddy_value_t *)(r + 1);
    char *p = (char *)r->vals + vsz;
    for (int i = 0; i < s->nfields; i++) {
        r->vals[i] = values[i];
        if ((values[i].type == EDDY_TYPE_STRING || values[i].type == EDDY_TYPE_BYTES) &&
            values[i].len) {
            memcpy(p, values[i].u.s, values[i].len);
            r->vals[i].u.s = p;
            p += values[i].len;
        }
    }
    pthread_mutex_lock(&q->lock);
    r->offset = q->next_offset++;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->count++;
    q->bytes += (int64_t)r->bytes;
    pthread_mutex_unlock(&q->lock);
    return EDDY_OK;
}

eddy_err_t eddy__host_end(const eddy_srcdef_t *def, int partition) {
    if (def->ops != &eddy__src_host)
        return EDDY_ERR_INVAL;
    host_conf_t *c = def->conf;
    if (partition < -1 || partition >= c->partitions)
        return EDDY_ERR_INVAL;
    for (int i = 0; i < c->partitions; i++) {
        if (partition >= 0 && i != partition)
            continue;
        pthread_mutex_lock(&c->q[i].lock);
        c->q[i].ended = true;
        pthread_mutex_unlock(&c->q[i].lock);
    }
    return EDDY_OK;
}

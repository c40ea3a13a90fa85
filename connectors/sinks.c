/*
 * Embedded sinks: stdout and file (JSON lines), blackhole (count only, for
 * benchmarks) and callback (into the host program).
 *
 * A sink is shared by every task that feeds it. Each task encodes into its
 * own buffer without locks; the buffer is written out under the sink's
 * lock when it passes 256 KiB and at every commit, so lines of different
 * tasks never interleave and the lock is taken once per many records.
 */
#include "cfg.h"
#include "json.h"
#include "plan.h"

#include <errno.h>
#include <pthread.h>

#define FLUSH_BYTES (256 * 1024)

typedef struct {
    pthread_mutex_t lock;
    FILE *f;
    char *path;       /* NULL: stdout */
    bool append;
    int refs;
    bool failed;
} out_conf_t;

static void out_free(void *conf) {
    out_conf_t *c = conf;
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    eddy_free(c->path);
    eddy_free(c);
}

static const char *const stdout_keys[] = {"name", "type", NULL};
static const char *const file_keys[] = {"name", "type", "path", "append", NULL};

static eddy_err_t stdout_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    eddy_err_t err = eddy__cfg_check_keys(cc->step, "stdout sink", stdout_keys, errstr,
                                          errstr_size);
    if (err)
        return err;
    out_conf_t *c = eddy_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    cc->conf = c;
    cc->label = eddy_strdup("stdout (JSON lines)");
    return EDDY_OK;
}

static eddy_err_t file_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    eddy_err_t err;
    const char *path = NULL;
    bool append = false;
    if ((err = eddy__cfg_check_keys(cc->step, "file sink", file_keys, errstr, errstr_size)) ||
        (err = eddy__cfg_str(cc->step, "path", true, &path, errstr, errstr_size)) ||
        (err = eddy__cfg_bool(cc->step, "append", false, &append, errstr, errstr_size)))
        return err;
    out_conf_t *c = eddy_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->path = eddy_strdup(path);
    c->append = append;
    cc->conf = c;
    cc->label = eddy_asprintf("file %s (JSON lines)", path);
    return EDDY_OK;
}

/* Per-task state: the pending output. */
typedef struct {
    eddy_buf_t buf;
} out_state_t;

static eddy_err_t out_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    out_conf_t *c = op->node->conf;
    pthread_mutex_lock(&c->lock);
    if (!c->refs++) {
        if (c->path) {
            c->f = fopen(c->path, c->append ? "ab" : "wb");
            if (!c->f) {
                int e = errno;
                c->refs--;
                pthread_mutex_unlock(&c->lock);
                return eddy__cnode_err(eddy__cnode_get(op->node->where, "path"), errstr,
                                       errstr_size, "file sink: cannot open '%s': %s", c->path,
                                       strerror(e));
            }
        } else {
            c->f = stdout;
        }
    }
    pthread_mutex_unlock(&c->lock);
    op->state = eddy_calloc(1, sizeof(out_state_t));
    return EDDY_OK;
}

static eddy_err_t out_flush(eddy_op_t *op) {
    out_conf_t *c = op->node->conf;
    out_state_t *st = op->state;
    if (!st || !st->buf.len)
        return EDDY_OK;
    eddy_err_t err = EDDY_OK;
    pthread_mutex_lock(&c->lock);
    if (fwrite(st->buf.p, 1, st->buf.len, c->f) != st->buf.len || fflush(c->f)) {
        if (!c->failed)
            fprintf(stderr, "eddy: %s: write to %s failed: %s\n", op->node->name,
                    c->path ? c->path : "stdout", strerror(errno));
        c->failed = true;
        err = EDDY_ERR_IO;
    }
    pthread_mutex_unlock(&c->lock);
    st->buf.len = 0;
    return err;
}

static eddy_err_t out_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    (void)out;
    out_state_t *st = op->state;
    for (uint32_t i = 0; i < in->n; i++) {
        eddy__json_encode_row(&st->buf, in->schema, in->recs[i].vals);
        eddy_buf_putc(&st->buf, '\n');
    }
    eddy__task_count_out(op->task, in->n);
    eddy__task_latency(op->task, eddy__now_ns() - eddy__task_ingest_ns(op->task));
    if (st->buf.len >= FLUSH_BYTES)
        return out_flush(op);
    return EDDY_OK;
}

static void out_destroy(eddy_op_t *op) {
    out_conf_t *c = op->node->conf;
    out_state_t *st = op->state;
    if (!st)
        return;
    out_flush(op);
    eddy_buf_free(&st->buf);
    eddy_free(st);
    op->state = NULL;
    pthread_mutex_lock(&c->lock);
    if (--c->refs == 0 && c->f) {
        if (c->path)
            fclose(c->f);
        else
            fflush(c->f);
        c->f = NULL;
    }
    pthread_mutex_unlock(&c->lock);
}

const eddy_op_ops_t eddy__sink_stdout = {
    .abi = EDDY_OP_ABI,
    .name = "stdout",
    .compile = stdout_compile,
    .free_conf = out_free,
    .init = out_init,
    .process = out_process,
    .commit = out_flush,
    .destroy = out_destroy,
    .is_sink = true,
};

const eddy_op_ops_t eddy__sink_file = {
    .abi = EDDY_OP_ABI,
    .name = "file",
    .compile = file_compile,
    .free_conf = out_free,
    .init = out_init,
    .process = out_process,
    .commit = out_flush,
    .destroy = out_destroy,
    .is_sink = true,
};

/* ------------------------------------------------------------- blackhole */

static const char *const bh_keys[] = {"name", "type", NULL};

static eddy_err_t bh_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    /* the label only once the config is right: a failed compile frees nothing */
    eddy_err_t e = eddy__cfg_check_keys(cc->step, "blackhole sink", bh_keys, errstr, errstr_size);
    if (!e)
        cc->label = eddy_strdup("blackhole (count only)");
    return e;
}

static eddy_err_t bh_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    (void)out;
    eddy__task_count_out(op->task, in->n);
    eddy__task_latency(op->task, eddy__now_ns() - eddy__task_ingest_ns(op->task));
    return EDDY_OK;
}

const eddy_op_ops_t eddy__sink_blackhole = {
    .abi = EDDY_OP_ABI,
    .name = "blackhole",
    .compile = bh_compile,
    .process = bh_process,
    .is_sink = true,
};

/* -------------------------------------------------------------- callback */

typedef struct {
    eddy_sink_cb_t cb;
    void *opaque;
} cb_conf_t;

static eddy_err_t cb_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    if (!cc->step->opaque)
        return eddy__cnode_err(eddy__cnode_get(cc->step, "type"), errstr, errstr_size,
                               "sink type 'callback' is added by the host program with "
                               "eddy_topology_add_callback_sink(), not in a file");
    eddy_err_t err = eddy__cfg_check_keys(cc->step, "callback sink", bh_keys, errstr,
                                          errstr_size);
    if (err)
        return err;
    cb_conf_t *c = eddy_calloc(1, sizeof(*c));
    c->cb = (eddy_sink_cb_t)cc->step->opaque;
    c->opaque = cc->step->opaque2;
    cc->conf = c;
    cc->label = eddy_strdup("host callback");
    return EDDY_OK;
}

static void cb_free(void *conf) { eddy_free(conf); }

static eddy_err_t cb_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    (void)out;
    const cb_conf_t *c = op->node->conf;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        eddy_record_t view = {.schema = in->schema, .values = r->vals, .key = r->key,
                              .key_len = r->key_len, .ts_ms = r->ts_ms,
                              .partition = r->partition, .offset = r->offset};
        eddy_err_t err = c->cb(&view, c->opaque);
        if (err)
            return err;
    }
    eddy__task_count_out(op->task, in->n);
    eddy__task_latency(op->task, eddy__now_ns() - eddy__task_ingest_ns(op->task));
    return EDDY_OK;
}

const eddy_op_ops_t eddy__sink_callback = {
    .abi = EDDY_OP_ABI,
    .name = "callback",
    .compile = cb_compile,
    .free_conf = cb_free,
    .process = cb_process,
    .is_sink = true,
};

/*
 * JSON-lines file source: one record per line, decoded against the declared
 * schema. A line that does not decode (bad JSON, missing field, wrong type,
 * longer than max_line_bytes) goes to the dead-letter output with the path,
 * the line number as offset and the reason; reading goes on. Event time
 * comes from the `timestamp:` field, or the wall clock at read time when no
 * field is named.
 */
#include "cfg.h"
#include "json.h"
#include "plan.h"

#include <errno.h>

typedef struct {
    char *path;
    eddy_schema_t *schema;  /* borrowed from the stream */
    int ts_field;           /* -1: processing time */
    int64_t max_line;
} file_conf_t;

static const char *const file_keys[] = {"name", "type", "watermark", "path", "schema",
                                        "timestamp", "max_line_bytes", NULL};

static eddy_err_t fs_compile(eddy_srcdef_t *def, const eddy_cnode_t *m, char *errstr,
                             size_t errstr_size) {
    file_conf_t *c = eddy_calloc(1, sizeof(*c));
    def->conf = c;
    c->ts_field = -1;
    c->max_line = 1024 * 1024;
    const char *path = NULL, *ts = NULL;
    eddy_err_t err;
    if ((err = eddy__cfg_check_keys(m, "file source", file_keys, errstr, errstr_size)) ||
        (err = eddy__cfg_str(m, "path", true, &path, errstr, errstr_size)) ||
        (err = eddy__cfg_str(m, "timestamp", false, &ts, errstr, errstr_size)) ||
        (err = eddy__cfg_bytes(m, "max_line_bytes", false, &c->max_line, errstr, errstr_size)))
        return err;
    c->path = eddy_strdup(path);
    const eddy_cnode_t *sn = eddy__cnode_get(m, "schema");
    if (!sn)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "file source '%s': missing required key 'schema'", def->name);
    eddy_schema_t *s = eddy__schema_from_cnode(sn, errstr, errstr_size);
    if (!s)
        return EDDY_ERR_CONFIG;
    if (ts) {
        c->ts_field = eddy__schema_timestamp_field(s, eddy__cnode_get(m, "timestamp"), ts, "",
                                                   errstr, errstr_size);
        if (c->ts_field < 0) {
            eddy__schema_unref(s);
            return EDDY_ERR_CONFIG;
        }
    }
    c->schema = s;
    eddy__srcdef_add_stream(def, NULL, s);
    def->partitions = 1;
    return EDDY_OK;
}

static void fs_free_conf(void *conf) {
    file_conf_t *c = conf;
    eddy_free(c->path);
    eddy_free(c);
}

typedef struct {
    const file_conf_t *c;
    FILE *f;
    eddy_json_dec_t *dec;
    int64_t line_no;
    eddy_buf_t line;
    bool too_long;
    int partition;
} fs_state_t;

static eddy_err_t fs_open(const eddy_srcdef_t *def, int partition, void **statep, char *errstr,
                          size_t errstr_size) {
    const file_conf_t *c = def->conf;
    FILE *f = fopen(c->path, "rb");
    if (!f)
        return eddy__cnode_err(eddy__cnode_get(def->where, "path"), errstr, errstr_size,
                               "file source '%s': cannot open '%s': %s", def->name, c->path,
                               strerror(errno));
    fs_state_t *st = eddy_calloc(1, sizeof(*st));
    st->c = c;
    st->f = f;
    st->dec = eddy__json_dec_new(c->schema);
    st->partition = partition;
    *statep = st;
    return EDDY_OK;
}

static void fs_close(void *state) {
    fs_state_t *st = state;
    fclose(st->f);
    eddy__json_dec_destroy(st->dec);
    eddy_buf_free(&st->line);
    eddy_free(st);
}

/* Handle one complete line. */
static void fs_line(fs_state_t *st, eddy_src_out_t *out, const char *line, size_t len) {
    eddy_task_t *task = out->task;
    eddy_batch_t *b = out->batches[0];
    const file_conf_t *c = st->c;
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (!len)
        return; /* blank lines are not records */
    eddy__task_count_in(task, 1);
    if (!b)
        return;
    eddy_arena_t *a = b->arena;
    int nf = c->schema->nfields;
    eddy_value_t *v = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)nf);
    char reason[512];
    if (eddy__json_decode(st->dec, line, len, a, v, reason, sizeof(reason))) {
        eddy__task_dead_letter(task, reason, c->path, st->partition, st->line_no, line, len);
        return;
    }
    int64_t ts;
    if (c->ts_field >= 0) {
        const eddy_value_t *tv = &v[c->ts_field];
        if (tv->type == EDDY_TYPE_NULL) {
            snprintf(reason, sizeof(reason), "event time field '%s' is null",
                     c->schema->fields[c->ts_field].name);
            eddy__task_dead_letter(task, reason, c->path, st->partition, st->line_no, line, len);
            return;
        }
        ts = tv->u.i;
    } else {
        ts = eddy__wall_ms();
    }
    eddy_rec_t *r = eddy_batch_push(b);
    memset(r, 0, sizeof(*r));
    r->vals = v;
    r->ts_ms = ts;
    r->partition = st->partition;
    r->offset = st->line_no;
}

static eddy_err_t fs_poll(void *state, eddy_src_out_t *out, int max, bool *idle) {
    (void)idle;
    fs_state_t *st = state;
    int lines = 0;
    int ch;
    while (lines < max) {
        ch = getc_unlocked(st->f);
        if (ch == EOF) {
            if (ferror(st->f))
                return EDDY_ERR_IO;
            if (st->line.len || st->too_long) {
                st->line_no++;
                if (!st->too_long)
                    fs_line(st, out, st->line.p, st->line.len);
                st->line.len = 0;
                st->too_long = false;
            }
            return EDDY_ERR_EOF;
        }
        if (ch == '\n') {
            st->line_no++;
            lines++;
            if (st->too_long) {
                char reason[128];
                snprintf(reason, sizeof(reason), "line longer than max_line_bytes (%lld)",
                         (long long)st->c->max_line);
                eddy__task_count_in(out->task, 1);
                eddy__task_dead_letter(out->task, reason, st->c->path, st->partition,
                                       st->line_no, st->line.p, st->line.len);
            } else {
                fs_line(st, out, st->line.p ? st->line.p : "", st->line.len);
            }
            st->line.len = 0;
            st->too_long = false;
            continue;
        }
        if ((int64_t)st->line.len >= st->c->max_line) {
            st->too_long = true; /* keep the head for the dead letter */
            continue;
        }
        eddy_buf_putc(&st->line, (char)ch);
    }
    return EDDY_OK;
}

/* Position: byte offset of the first unread line, and its line number. */
static void fs_position(void *state, eddy_buf_t *out) {
    fs_state_t *st = state;
    int64_t off = (int64_t)ftello(st->f) - (int64_t)st->line.len;
    eddy_buf_put(out, &off, 8);
    eddy_buf_put(out, &st->line_no, 8);
}

static eddy_err_t fs_seek(void *state, const char *pos, size_t len, char *errstr,
                          size_t errstr_size) {
    fs_state_t *st = state;
    int64_t off, line;
    if (len != 16) {
        eddy__seterr(errstr, errstr_size, "file source %s: stored position is %zu bytes",
                     st->c->path, len);
        return EDDY_ERR_DECODE;
    }
    memcpy(&off, pos, 8);
    memcpy(&line, pos + 8, 8);
    if (fseeko(st->f, (off_t)off, SEEK_SET)) {
        eddy__seterr(errstr, errstr_size, "file source %s: cannot resume at byte %lld: %s",
                     st->c->path, (long long)off, strerror(errno));
        return EDDY_ERR_IO;
    }
    st->line_no = line;
    st->line.len = 0;
    st->too_long = false;
    return EDDY_OK;
}

const eddy_src_ops_t eddy__src_file = {
    .position = fs_position,
    .seek = fs_seek,
    .abi = EDDY_OP_ABI,
    .name = "file",
    .compile = fs_compile,
    .free_conf = fs_free_conf,
    .open = fs_open,
    .poll = fs_poll,
    .close = fs_close,
};

/*
 * The configuration-node tree: the one representation of a topology, built
 * by the YAML loader (with file positions) or by the C builder API (line 0).
 * The topology compiler walks it and reports errors at node positions.
 */
#include "eddy_int.h"

eddy_cnode_t *eddy__cnode_new(eddy_cnode_kind_t kind, const char *file, int line, int col) {
    eddy_cnode_t *n = eddy_calloc(1, sizeof(*n));
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    return n;
}

void eddy__cnode_free(eddy_cnode_t *n) {
    if (!n)
        return;
    for (int i = 0; i < n->n; i++) {
        if (n->keys)
            eddy_free(n->keys[i]);
        if (n->key_nodes)
            eddy__cnode_free(n->key_nodes[i]);
        eddy__cnode_free(n->items[i]);
    }
    eddy_free(n->keys);
    eddy_free(n->key_nodes);
    eddy_free(n->items);
    eddy_free(n->scalar);
    eddy_free(n);
}

eddy_cnode_t *eddy__cnode_get(const eddy_cnode_t *n, const char *key) {
    if (!n || n->kind != EDDY_CNODE_MAP)
        return NULL;
    for (int i = 0; i < n->n; i++)
        if (!strcmp(n->keys[i], key))
            return n->items[i];
    return NULL;
}

static void grow(eddy_cnode_t *n) {
    if (n->n < n->cap)
        return;
    n->cap = n->cap ? n->cap * 2 : 4;
    n->items = eddy_realloc(n->items, sizeof(*n->items) * (size_t)n->cap);
    if (n->kind == EDDY_CNODE_MAP) {
        n->keys = eddy_realloc(n->keys, sizeof(*n->keys) * (size_t)n->cap);
        n->key_nodes = eddy_realloc(n->key_nodes, sizeof(*n->key_nodes) * (size_t)n->cap);
    }
}

void eddy__cnode_map_add(eddy_cnode_t *map, eddy_cnode_t *key, eddy_cnode_t *val) {
    eddy_assert(map->kind == EDDY_CNODE_MAP && key->kind == EDDY_CNODE_SCALAR);
    grow(map);
    map->keys[map->n] = eddy_strdup(key->scalar);
    map->key_nodes[map->n] = key;
    map->items[map->n] = val;
    map->n++;
}

void eddy__cnode_seq_add(eddy_cnode_t *seq, eddy_cnode_t *val) {
    eddy_assert(seq->kind == EDDY_CNODE_SEQ);
    grow(seq);
    seq->items[seq->n++] = val;
}

int eddy__cnode_where(const eddy_cnode_t *n, char *buf, size_t size) {
    if (!n || n->line <= 0)
        return snprintf(buf, size, "%s", n && n->file ? n->file : "<api>");
    return snprintf(buf, size, "%s:%d:%d", n->file ? n->file : "<input>", n->line, n->col);
}

static eddy_err_t verr(const eddy_cnode_t *n, int col_offset, char *errstr, size_t errstr_size,
                       const char *fmt, va_list ap) {
    char where[512], msg[1024];
    if (n && n->line > 0)
        snprintf(where, sizeof(where), "%s:%d:%d", n->file ? n->file : "<input>", n->line,
                 n->col + col_offset);
    else
        snprintf(where, sizeof(where), "%s", n && n->file ? n->file : "<api>");
    vsnprintf(msg, sizeof(msg), fmt, ap);
    eddy__seterr(errstr, errstr_size, "%s: %s", where, msg);
    return EDDY_ERR_CONFIG;
}

eddy_err_t eddy__cnode_err(const eddy_cnode_t *n, char *errstr, size_t errstr_size,
                           const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    eddy_err_t e = verr(n, 0, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return e;
}

eddy_err_t eddy__cnode_err_at(const eddy_cnode_t *n, int col_offset, char *errstr,
                              size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    eddy_err_t e = verr(n, col_offset, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return e;
}

/* ------------------------------------------------------- public builders */

static eddy_cnode_t *api_scalar(const char *v) {
    eddy_cnode_t *s = eddy__cnode_new(EDDY_CNODE_SCALAR, NULL, 0, 0);
    s->scalar = eddy_strdup(v ? v : "");
    s->quoted = true; /* built in C: a string, never a YAML-typed value */
    return s;
}

/* Replace or add map[key]. */
static eddy_cnode_t *map_put(eddy_cnode_t *map, const char *key, eddy_cnode_t *val) {
    if (!map || map->kind != EDDY_CNODE_MAP || !key) {
        eddy__cnode_free(val);
        return NULL;
    }
    for (int i = 0; i < map->n; i++) {
        if (!strcmp(map->keys[i], key)) {
            eddy__cnode_free(map->items[i]);
            map->items[i] = val;
            return val;
        }
    }
    eddy__cnode_map_add(map, api_scalar(key), val);
    return val;
}

eddy_cnode_t *eddy_cnode_set(eddy_cnode_t *map, const char *key, const char *value) {
    return map_put(map, key, api_scalar(value));
}

static eddy_cnode_t *get_or_make(eddy_cnode_t *map, const char *key, eddy_cnode_kind_t kind) {
    eddy_cnode_t *c = eddy__cnode_get(map, key);
    if (c && c->kind == kind)
        return c;
    return map_put(map, key, eddy__cnode_new(kind, NULL, 0, 0));
}

eddy_cnode_t *eddy_cnode_map(eddy_cnode_t *map, const char *key) {
    return get_or_make(map, key, EDDY_CNODE_MAP);
}
eddy_cnode_t *eddy_cnode_seq(eddy_cnode_t *map, const char *key) {
    return get_or_make(map, key, EDDY_CNODE_SEQ);
}
eddy_cnode_t *eddy_cnode_append_map(eddy_cnode_t *seq) {
    if (!seq || seq->kind != EDDY_CNODE_SEQ)
        return NULL;
    eddy_cnode_t *m = eddy__cnode_new(EDDY_CNODE_MAP, NULL, 0, 0);
    eddy__cnode_seq_add(seq, m);
    return m;
}
eddy_cnode_t *eddy_cnode_append(eddy_cnode_t *seq, const char *value) {
    if (!seq || seq->kind != EDDY_CNODE_SEQ)
        return NULL;
    eddy_cnode_t *s = api_scalar(value);
    eddy__cnode_seq_add(seq, s);
    return s;
}

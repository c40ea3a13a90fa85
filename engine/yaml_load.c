/*
 * YAML text -> configuration-node tree.
 *
 * We drive libyaml's event parser ourselves instead of using its document
 * loader (yaml_parser_load) because the loader gives us none of what a
 * topology file needs: it accepts duplicate keys silently (the last one
 * wins, hiding typos), it shares aliased nodes so any walk of the graph can
 * explode exponentially (billion laughs), and it would cost a second tree.
 * With events we build eddy_cnode_t nodes directly, in one pass, keeping
 * each node's line and column for error messages.
 *
 * The builder keeps an explicit stack of open mappings/sequences (bounded
 * by EDDY_YAML_MAX_DEPTH, so nothing downstream that recurses over the tree
 * can run out of stack). Every node is attached to its parent the moment it
 * is made, so on any error freeing the root (plus the keys still waiting
 * for their value) frees everything.
 *
 * Aliases are expanded by deep copy, because the rest of the engine treats
 * the tree as a tree (it frees and walks it). Each anchor records the size,
 * scalar bytes and height of its subtree when it is complete, so an alias
 * is checked against the node, byte and depth budgets before a single node
 * is copied. An alias to a node that is still open (it contains the alias)
 * is rejected, which also rules out cycles.
 *
 * Duplicate-key checks and anchor lookups use a hash index once there are
 * more than a few names, so a 10 MB flow mapping or a file full of anchors
 * stays linear instead of quadratic.
 */
#include "cfg.h"

#include <limits.h>
#include <yaml.h>

#define YAML_CORE_TAG "tag:yaml.org,2002:"

/* Name -> entry index (see "name index" below). */
typedef const char *(*name_at_fn)(const void *arr, int i);
typedef struct {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    uint32_t cap;    /* power of two, or 0 while scanning */
} name_index_t;

typedef struct {
    eddy_cnode_t *node; /* MAP or SEQ being filled (owned by the tree) */
    eddy_cnode_t *key;  /* MAP: key waiting for its value (owned here) */
    int anchor;         /* index into loader anchors, or -1 */
    name_index_t keys;  /* MAP: duplicate-key lookups */
} frame_t;

typedef struct {
    char *name;
    eddy_cnode_t *node;  /* borrowed from the tree (or a pending key) */
    bool complete;       /* false while the node is still open */
    size_t nodes, bytes; /* what one copy costs */
    int height;          /* levels of collections in the subtree */
} anchor_t;

typedef struct {
    const char *file;
    char *errstr;
    size_t errstr_size;
    bool failed;
    frame_t stack[EDDY_YAML_MAX_DEPTH];
    int depth;
    eddy_cnode_t *root;
    anchor_t *anchors;
    int nanchors, anchors_cap;
    name_index_t anchor_index;
    size_t nodes;       /* made so far, copies included */
    size_t alias_bytes; /* scalar bytes copied by aliases */
} loader_t;

static int mark_pos(size_t v) {
    return v >= (size_t)INT_MAX - 1 ? INT_MAX : (int)v + 1;
}

static const char *kind_name(eddy_cnode_kind_t k) {
    return k == EDDY_CNODE_MAP ? "mapping" : k == EDDY_CNODE_SEQ ? "sequence" : "scalar";
}

static void lerr(loader_t *L, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void lerr(loader_t *L, int line, int col, const char *fmt, ...) {
    if (L->failed)
        return; /* the first error is the one the user needs */
    L->failed = true;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    eddy__seterr(L->errstr, L->errstr_size, "%s:%d:%d: %s", L->file ? L->file : "<input>", line,
                 col, msg);
}

/* Keys and anchors go into messages: keep them short and printable. */
static const char *clip(const char *s, char *buf, size_t size) {
    size_t i = 0, max = size > 4 ? size - 4 : 0;
    for (; s[i] && i < max; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = 0;
    return buf;
}

static eddy_cnode_t *mk(loader_t *L, eddy_cnode_kind_t kind, yaml_mark_t m) {
    if (L->nodes >= EDDY_YAML_MAX_NODES) {
        lerr(L, mark_pos(m.line), mark_pos(m.column), "the document has more than %d nodes",
             EDDY_YAML_MAX_NODES);
        return NULL;
    }
    L->nodes++;
    return eddy__cnode_new(kind, L->file, mark_pos(m.line), mark_pos(m.column));
}

/* Only the core schema's tags mean anything to us; anything else (local
 * "!foo" tags) would be silently ignored, so it is an error. Returns -1 on
 * error, 1 for !!str (and the non-specific "!"), 0 otherwise. */
static int check_tag(loader_t *L, const yaml_char_t *tag, yaml_mark_t m) {
    if (!tag)
        return 0;
    const char *t = (const char *)tag;
    if (!strcmp(t, "!") || !strcmp(t, YAML_CORE_TAG "str"))
        return 1;
    if (!strncmp(t, YAML_CORE_TAG, strlen(YAML_CORE_TAG)))
        return 0;
    char buf[64];
    lerr(L, mark_pos(m.line), mark_pos(m.column), "unsupported tag '%s'",
         clip(t, buf, sizeof(buf)));
    return -1;
}

/* ------------------------------------------------------- name index */

/* Name -> position in an array of names, for duplicate keys and anchor
 * lookups. Below NAME_INDEX_MIN entries a backward scan is cheaper; past
 * it an open-addressing table keeps a long mapping, or a file with many
 * anchors, linear instead of quadratic. An equal name replaces the earlier
 * entry, so a redefined anchor resolves to its latest definition. */
#define NAME_INDEX_MIN 16

static uint32_t name_slot(const name_index_t *x, const char *name) {
    return (uint32_t)eddy__hash64(name, strlen(name)) & (x->cap - 1);
}

static void name_index_put(name_index_t *x, name_at_fn name_at, const void *arr, int i) {
    const char *name = name_at(arr, i);
    uint32_t s = name_slot(x, name);
    while (x->slots[s] && strcmp(name_at(arr, (int)x->slots[s] - 1), name))
        s = (s + 1) & (x->cap - 1);
    x->slots[s] = (uint32_t)i + 1;
}

/* Call after appending entry n - 1. Keeps the table at most half full. */
static void name_index_added(name_index_t *x, name_at_fn name_at, const void *arr, int n) {
    if (n < NAME_INDEX_MIN)
        return;
    if (x->slots && (uint32_t)n * 2 <= x->cap) {
        name_index_put(x, name_at, arr, n - 1);
        return;
    }
    uint32_t cap = 64;
    while (cap < (uint32_t)n * 4)
        cap *= 2;
    eddy_free(x->slots);
    x->slots = eddy_calloc(cap, sizeof(*x->slots));
    x->cap = cap;
    for (int i = 0; i < n; i++)
        name_index_put(x, name_at, arr, i);
}

/* Latest entry called name among the n entries, or -1. */
static int name_index_find(const name_index_t *x, name_at_fn name_at, const void *arr, int n,
                           const char *name) {
    if (!x->slots) {
        for (int i = n - 1; i >= 0; i--)
            if (!strcmp(name_at(arr, i), name))
                return i;
        return -1;
    }
    for (uint32_t s = name_slot(x, name); x->slots[s]; s = (s + 1) & (x->cap - 1))
        if (!strcmp(name_at(arr, (int)x->slots[s] - 1), name))
            return (int)x->slots[s] - 1;
    return -1;
}

static const char *map_key_at(const void *arr, int i) {
    return ((const eddy_cnode_t *)arr)->keys[i];
}
static const char *anchor_name_at(const void *arr, int i) {
    return ((const anchor_t *)arr)[i].name;
}

/* ------------------------------------------------------------- building */

/* Put a finished (or just opened) node in its place. On failure the node
 * is freed and an error is set. */
static bool attach(loader_t *L, eddy_cnode_t *node) {
    if (L->depth == 0) {
        /* A second root cannot happen: a second document is refused at its
         * start event. Still, never leak. */
        if (L->root) {
            eddy__cnode_free(node);
            lerr(L, 1, 1, "more than one root node");
            return false;
        }
        L->root = node;
        return true;
    }
    frame_t *f = &L->stack[L->depth - 1];
    if (f->node->kind == EDDY_CNODE_SEQ) {
        eddy__cnode_seq_add(f->node, node);
        return true;
    }
    if (f->key) {
        eddy__cnode_map_add(f->node, f->key, node);
        f->key = NULL;
        name_index_added(&f->keys, map_key_at, f->node, f->node->n);
        return true;
    }
    /* node is a key */
    char buf[72];
    if (node->kind != EDDY_CNODE_SCALAR) {
        lerr(L, node->line, node->col, "a mapping key must be a scalar, not a %s",
             kind_name(node->kind));
    } else if (!node->quoted && !strcmp(node->scalar, "<<")) {
        lerr(L, node->line, node->col,
             "merge keys ('<<') are not supported; write the keys out, or alias the whole "
             "mapping");
    } else {
        int dup = name_index_find(&f->keys, map_key_at, f->node, f->node->n, node->scalar);
        if (dup < 0) {
            f->key = node;
            return true;
        }
        const eddy_cnode_t *first = f->node->key_nodes[dup];
        lerr(L, node->line, node->col, "duplicate key '%s' (first at %d:%d)",
             clip(node->scalar, buf, sizeof(buf)), first->line, first->col);
    }
    eddy__cnode_free(node);
    return false;
}

static void add_anchor(loader_t *L, const yaml_char_t *name, eddy_cnode_t *node) {
    if (L->nanchors == L->anchors_cap) {
        L->anchors_cap = L->anchors_cap ? L->anchors_cap * 2 : 8;
        L->anchors = eddy_realloc(L->anchors, sizeof(*L->anchors) * (size_t)L->anchors_cap);
    }
    anchor_t *a = &L->anchors[L->nanchors++];
    memset(a, 0, sizeof(*a));
    a->name = eddy_strdup((const char *)name);
    a->node = node;
    name_index_added(&L->anchor_index, anchor_name_at, L->anchors, L->nanchors);
}

/* Cost of one copy of a subtree. Recursion is bounded by the depth limit. */
static void measure(const eddy_cnode_t *n, size_t *nodes, size_t *bytes, int *height) {
    *nodes += 1;
    *height = 0;
    if (n->kind == EDDY_CNODE_SCALAR) {
        *bytes += strlen(n->scalar) + 1;
        return;
    }
    int h = 0;
    for (int i = 0; i < n->n; i++) {
        if (n->kind == EDDY_CNODE_MAP) {
            int kh;
            measure(n->key_nodes[i], nodes, bytes, &kh);
            *bytes += strlen(n->keys[i]) + 1; /* map_add's copy of the key text */
        }
        int ch;
        measure(n->items[i], nodes, bytes, &ch);
        if (ch > h)
            h = ch;
    }
    *height = h + 1;
}

static void complete_anchor(anchor_t *a) {
    a->complete = true;
    measure(a->node, &a->nodes, &a->bytes, &a->height);
}

static eddy_cnode_t *copy_tree(const eddy_cnode_t *s) {
    eddy_cnode_t *d = eddy__cnode_new(s->kind, s->file, s->line, s->col);
    if (s->kind == EDDY_CNODE_SCALAR) {
        d->scalar = eddy_strdup(s->scalar);
        d->quoted = s->quoted;
        return d;
    }
    for (int i = 0; i < s->n; i++) {
        if (s->kind == EDDY_CNODE_MAP)
            eddy__cnode_map_add(d, copy_tree(s->key_nodes[i]), copy_tree(s->items[i]));
        else
            eddy__cnode_seq_add(d, copy_tree(s->items[i]));
    }
    return d;
}

static void on_scalar(loader_t *L, const yaml_event_t *ev) {
    yaml_mark_t m = ev->start_mark;
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    /* Our scalars are C strings: "a\0b" would silently become "a". */
    if (memchr(v, 0, len)) {
        lerr(L, mark_pos(m.line), mark_pos(m.column), "a scalar contains a NUL character");
        return;
    }
    int tag = check_tag(L, ev->data.scalar.tag, m);
    if (tag < 0)
        return;
    eddy_cnode_t *n = mk(L, EDDY_CNODE_SCALAR, m);
    if (!n)
        return;
    n->scalar = eddy_strndup(v, len);
    n->quoted = tag == 1 || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (ev->data.scalar.tag && tag == 0)
        n->quoted = false; /* e.g. !!int "5": typed, not a string */
    if (!attach(L, n))
        return;
    if (ev->data.scalar.anchor) {
        add_anchor(L, ev->data.scalar.anchor, n);
        complete_anchor(&L->anchors[L->nanchors - 1]);
    }
}

static void on_alias(loader_t *L, const yaml_event_t *ev) {
    yaml_mark_t m = ev->start_mark;
    int line = mark_pos(m.line), col = mark_pos(m.column);
    const char *name = (const char *)ev->data.alias.anchor;
    char buf[72];
    int ai = name_index_find(&L->anchor_index, anchor_name_at, L->anchors, L->nanchors, name);
    if (ai < 0) {
        lerr(L, line, col, "unknown alias '*%s'", clip(name, buf, sizeof(buf)));
        return;
    }
    const anchor_t *a = &L->anchors[ai];
    if (!a->complete) {
        lerr(L, line, col, "alias '*%s' is inside the node it refers to",
             clip(name, buf, sizeof(buf)));
        return;
    }
    if (L->nodes + a->nodes > EDDY_YAML_MAX_NODES ||
        L->alias_bytes + a->bytes > EDDY_YAML_MAX_ALIAS_BYTES) {
        lerr(L, line, col,
             "alias '*%s' expands the document beyond %d nodes or %u bytes of copies "
             "(nested aliases?)",
             clip(name, buf, sizeof(buf)), EDDY_YAML_MAX_NODES, EDDY_YAML_MAX_ALIAS_BYTES);
        return;
    }
    if (L->depth + a->height > EDDY_YAML_MAX_DEPTH) {
        lerr(L, line, col, "alias '*%s' nests deeper than %d levels", clip(name, buf, sizeof(buf)),
             EDDY_YAML_MAX_DEPTH);
        return;
    }
    L->nodes += a->nodes;
    L->alias_bytes += a->bytes;
    eddy_cnode_t *n = copy_tree(a->node);
    /* The copy's root is where the user wrote the alias; errors about the
     * value as a whole ("expected a mapping") then point there. */
    n->line = line;
    n->col = col;
    attach(L, n);
}

static void on_start(loader_t *L, const yaml_event_t *ev, eddy_cnode_kind_t kind) {
    yaml_mark_t m = ev->start_mark;
    const yaml_char_t *anchor, *tag;
    if (kind == EDDY_CNODE_MAP) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    if (L->depth >= EDDY_YAML_MAX_DEPTH) {
        lerr(L, mark_pos(m.line), mark_pos(m.column),
             "mappings and sequences nest deeper than %d levels", EDDY_YAML_MAX_DEPTH);
        return;
    }
    if (check_tag(L, tag, m) < 0)
        return;
    eddy_cnode_t *n = mk(L, kind, m);
    if (!n || !attach(L, n))
        return;
    frame_t *f = &L->stack[L->depth++];
    memset(f, 0, sizeof(*f));
    f->node = n;
    f->anchor = -1;
    if (anchor) {
        add_anchor(L, anchor, n);
        f->anchor = L->nanchors - 1;
    }
}

static void on_end(loader_t *L) {
    eddy_assert(L->depth > 0); /* libyaml pairs start and end events */
    frame_t *f = &L->stack[--L->depth];
    eddy__cnode_free(f->key); /* never set for a well-formed map; never leak */
    eddy_free(f->keys.slots);
    if (f->anchor >= 0)
        complete_anchor(&L->anchors[f->anchor]);
}

/* ------------------------------------------------------- syntax errors */

/* libyaml reports reader errors (bad UTF-8, control characters) by byte
 * offset only; turn that into line:col like every other message. */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col) {
    size_t l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            c++; /* count characters, not UTF-8 continuation bytes */
        }
    }
    *line = l >= INT_MAX ? INT_MAX : (int)l;
    *col = c >= INT_MAX ? INT_MAX : (int)c;
}

static void syntax_error(loader_t *L, const yaml_parser_t *p, const char *text, size_t len) {
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        L->failed = true;
        eddy__seterr(L->errstr, L->errstr_size, "%s: out of memory while parsing YAML",
                     L->file ? L->file : "<input>");
    } else if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_pos(text, len, p->problem_offset, &line, &col);
        if (p->problem_value >= 0)
            lerr(L, line, col, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value & 0xff);
        else
            lerr(L, line, col, "%s", problem);
    } else if (p->context) {
        lerr(L, mark_pos(p->problem_mark.line), mark_pos(p->problem_mark.column),
             "%s (%s at %d:%d)", problem, p->context, mark_pos(p->context_mark.line),
             mark_pos(p->context_mark.column));
    } else {
        lerr(L, mark_pos(p->problem_mark.line), mark_pos(p->problem_mark.column), "%s", problem);
    }
}

/* ------------------------------------------------------------------ entry */

eddy_cnode_t *eddy__yaml_load(const char *text, size_t len, const char *file, char *errstr,
                              size_t errstr_size) {
    loader_t L;
    memset(&L, 0, sizeof(L));
    L.file = file;
    L.errstr = errstr;
    L.errstr_size = errstr_size;
    if (!text) {
        text = "";
        len = 0;
    }

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        eddy__seterr(errstr, errstr_size, "%s: out of memory while parsing YAML",
                     file ? file : "<input>");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

    int ndocs = 0;
    bool done = false;
    while (!done && !L.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&L, &p, text, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1)
                lerr(&L, mark_pos(ev.start_mark.line), mark_pos(ev.start_mark.column),
                     "a topology is one YAML document; found a second one");
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(&L, &ev);
            break;
        case YAML_ALIAS_EVENT:
            on_alias(&L, &ev);
            break;
        case YAML_MAPPING_START_EVENT:
            on_start(&L, &ev, EDDY_CNODE_MAP);
            break;
        case YAML_SEQUENCE_START_EVENT:
            on_start(&L, &ev, EDDY_CNODE_SEQ);
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            on_end(&L);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);

    if (!L.failed) {
        const eddy_cnode_t *r = L.root;
        if (!r || (r->kind == EDDY_CNODE_SCALAR && !r->quoted && !r->scalar[0]))
            lerr(&L, 1, 1, "the document is empty; a topology must be a mapping");
        else if (r->kind != EDDY_CNODE_MAP)
            lerr(&L, r->line, r->col, "a topology must be a mapping");
    }

    /* Frames are still open only after an error. */
    for (int i = 0; i < L.depth; i++) {
        eddy__cnode_free(L.stack[i].key);
        eddy_free(L.stack[i].keys.slots);
    }
    for (int i = 0; i < L.nanchors; i++)
        eddy_free(L.anchors[i].name);
    eddy_free(L.anchors);
    eddy_free(L.anchor_index.slots);
    if (L.failed) {
        eddy__cnode_free(L.root);
        return NULL;
    }
    return L.root;
}

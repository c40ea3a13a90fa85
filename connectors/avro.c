/*
 * Avro decoding: schema parsing, writer -> reader resolution into a decode
 * plan, and the plan's interpreter.
 *
 * Why not Avro C's own decoding: its generic value API costs about 3M
 * records per CPU-second on a Nexmark bid (a value tree per record,
 * callbacks per field), and in 1.11.1 its resolvers do not handle a reader
 * field with a default the writer lacks (avro_resolved_writer_new refuses
 * it). Avro C still parses and checks every schema, and its writer is the
 * independent encoder in the tests; the JSON attributes it drops
 * (defaults, aliases, enum defaults, logicalType) are read with jansson
 * from the same text, walking the two trees side by side.
 *
 * Three stages:
 *   1. snode graph: one node per schema type with everything resolution
 *      needs. Named types are shared (a reference is the defining node);
 *      recursive types are rejected (a row cannot flatten them).
 *   2. reader layout (rl tree): where each reader type lands in the flat
 *      engine row. A reader type always covers a contiguous column range
 *      [lo, hi): nested records are flattened in field order, so a null
 *      branch of ["null", Record] is one "set [lo, hi) to NULL".
 *   3. plan: the writer graph is walked against the reader layout and
 *      compiled into programs of ops (prog_t). The main program follows the
 *      writer's byte order: each op reads one writer value and writes one
 *      column, skips a writer-only value, or fills a column with a reader
 *      default. Unions, arrays and maps hold sub-programs. Arrays, maps and
 *      unions of several non-null types become JSON text: the same ops run
 *      with slot -1 and append JSON instead of writing a column.
 *
 * Decoding is one switch per op over a bounds-checked cursor: varints have
 * a one-byte fast path, strings point into the input (UTF-8 checked eight
 * bytes at a time for ASCII), and every length is checked against the
 * bytes left before use, so corrupt input ends in an error that names the
 * field path and the byte offset, never in a read past the buffer.
 */
#include "connectors/avro.h"

#include "connectors/json.h"

#include <avro.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

/* Arrays and maps whose items can be zero bytes long (null, empty records)
 * could claim 2^63 items in a few bytes; more than this many is an error. */
#define ZERO_SIZE_ITEMS_MAX (1 << 20)

/* ============================================================ ownership */

/* Every allocation of a schema or a plan, freed together. */
typedef struct {
    void **p;
    int n, cap;
} owned_t;

static void *own(owned_t *o, void *p) {
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 32;
        o->p = eddy_realloc(o->p, sizeof(void *) * (size_t)o->cap);
    }
    o->p[o->n++] = p;
    return p;
}
static void *own_calloc(owned_t *o, size_t n, size_t size) {
    return own(o, eddy_calloc(n ? n : 1, size));
}
static char *own_strdup(owned_t *o, const char *s) { return own(o, eddy_strdup(s)); }
static void owned_free(owned_t *o) {
    for (int i = 0; i < o->n; i++)
        eddy_free(o->p[i]);
    eddy_free(o->p);
    o->p = NULL;
    o->n = o->cap = 0;
}

/* ============================================================ schemas */

typedef enum {
    K_NULL,
    K_BOOL,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BYTES,
    K_STRING,
    K_RECORD,
    K_ENUM,
    K_FIXED,
    K_ARRAY,
    K_MAP,
    K_UNION
} kind_t;

static const char *const kind_names[] = {"null",   "boolean", "int",    "long",  "float",
                                         "double", "bytes",   "string", "record", "enum",
                                         "fixed",  "array",   "map",    "union"};

/* Logical types that change the engine type (others are ignored, as the
 * specification asks for unknown ones). */
typedef enum { LT_NONE, LT_TS_MS, LT_TS_US, LT_TS_NS, LT_DATE, LT_TIME_MS, LT_TIME_US } lt_t;

typedef struct snode_s snode_t;

typedef struct {
    const char *name;
    const char **aliases;
    int naliases;
    json_t *def; /* borrowed from the schema's JSON; NULL: no default */
    snode_t *type;
} sfield_t;

struct snode_s {
    kind_t kind;
    lt_t lt;
    const char *name; /* named types: unqualified name */
    const char **aliases;
    int naliases;
    int n;            /* record fields, enum symbols, union branches */
    sfield_t *fields;
    const char **symbols;
    int enum_def;     /* enum: index of the default symbol, or -1 */
    int64_t size;     /* fixed */
    snode_t *items;   /* array items, map values */
    snode_t **branches;
    size_t min_bytes; /* smallest encoding of a value of this type */
    bool building;    /* on the build stack: a reference here is recursion */
};

struct eddy_avro_schema_s {
    avro_schema_t as;
    json_t *root;
    char *json;
    uint64_t hash;
    snode_t *top;
    owned_t mem;
};

typedef struct {
    eddy_avro_schema_t *sch;
    /* named avro schema -> its node */
    avro_schema_t *named_as;
    snode_t **named_node;
    int nnamed, capnamed;
    char *errstr;
    size_t errstr_size;
} sbuild_t;

static const char *unqualified(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static void read_aliases(owned_t *o, json_t *obj, const char ***out, int *n) {
    json_t *al = json_is_object(obj) ? json_object_get(obj, "aliases") : NULL;
    *out = NULL;
    *n = 0;
    if (!json_is_array(al))
        return;
    *out = own_calloc(o, json_array_size(al), sizeof(char *));
    for (size_t i = 0; i < json_array_size(al); i++) {
        const char *s = json_string_value(json_array_get(al, i));
        if (s)
            (*out)[(*n)++] = unqualified(s);
    }
}

static lt_t read_lt(json_t *js, kind_t k) {
    const char *lt = json_is_object(js) ? json_string_value(json_object_get(js, "logicalType"))
                                        : NULL;
    if (!lt)
        return LT_NONE;
    if (k == K_LONG) {
        if (!strcmp(lt, "timestamp-millis") || !strcmp(lt, "local-timestamp-millis"))
            return LT_TS_MS;
        if (!strcmp(lt, "timestamp-micros") || !strcmp(lt, "local-timestamp-micros"))
            return LT_TS_US;
        if (!strcmp(lt, "timestamp-nanos") || !strcmp(lt, "local-timestamp-nanos"))
            return LT_TS_NS;
        if (!strcmp(lt, "time-micros"))
            return LT_TIME_US;
    } else if (k == K_INT) {
        if (!strcmp(lt, "date"))
            return LT_DATE;
        if (!strcmp(lt, "time-millis"))
            return LT_TIME_MS;
    }
    return LT_NONE; /* unknown or misplaced: the underlying type, as the spec says */
}

/* {"type": {...}} and {"type": [...]} wrap the real definition. */
static json_t *unwrap(json_t *js) {
    while (json_is_object(js)) {
        json_t *t = json_object_get(js, "type");
        if (json_is_object(t) || json_is_array(t))
            js = t;
        else
            break;
    }
    return js;
}

static snode_t *sn_build(sbuild_t *b, avro_schema_t as, json_t *js, const char *path);

static snode_t *sn_named_lookup(sbuild_t *b, avro_schema_t as) {
    for (int i = 0; i < b->nnamed; i++)
        if (b->named_as[i] == as)
            return b->named_node[i];
    return NULL;
}

static void sn_named_add(sbuild_t *b, avro_schema_t as, snode_t *n) {
    if (b->nnamed == b->capnamed) {
        b->capnamed = b->capnamed ? b->capnamed * 2 : 8;
        b->named_as = eddy_realloc(b->named_as, sizeof(*b->named_as) * (size_t)b->capnamed);
        b->named_node = eddy_realloc(b->named_node, sizeof(*b->named_node) * (size_t)b->capnamed);
    }
    b->named_as[b->nnamed] = as;
    b->named_node[b->nnamed++] = n;
}

static snode_t *sn_build(sbuild_t *b, avro_schema_t as, json_t *js, const char *path) {
    owned_t *o = &b->sch->mem;
    if (avro_typeof(as) == AVRO_LINK)
        as = avro_schema_link_target(as);
    js = unwrap(js);
    if (is_avro_named_type(as)) {
        snode_t *seen = sn_named_lookup(b, as);
        if (seen) {
            if (seen->building) {
                eddy__seterr(b->errstr, b->errstr_size,
                             "%s: recursive type '%s' is not supported (a row cannot flatten it)",
                             path, seen->name);
                return NULL;
            }
            return seen;
        }
    }
    snode_t *n = own_calloc(o, 1, sizeof(*n));
    n->enum_def = -1;
    switch (avro_typeof(as)) {
    case AVRO_NULL:
        n->kind = K_NULL;
        break;
    case AVRO_BOOLEAN:
        n->kind = K_BOOL;
        n->min_bytes = 1;
        break;
    case AVRO_INT32:
        n->kind = K_INT;
        n->min_bytes = 1;
        break;
    case AVRO_INT64:
        n->kind = K_LONG;
        n->min_bytes = 1;
        break;
    case AVRO_FLOAT:
        n->kind = K_FLOAT;
        n->min_bytes = 4;
        break;
    case AVRO_DOUBLE:
        n->kind = K_DOUBLE;
        n->min_bytes = 8;
        break;
    case AVRO_BYTES:
        n->kind = K_BYTES;
        n->min_bytes = 1;
        break;
    case AVRO_STRING:
        n->kind = K_STRING;
        n->min_bytes = 1;
        break;
    case AVRO_RECORD: {
        n->kind = K_RECORD;
        n->name = avro_schema_name(as);
        read_aliases(o, js, &n->aliases, &n->naliases);
        json_t *fj = json_is_object(js) ? json_object_get(js, "fields") : NULL;
        n->n = (int)avro_schema_record_size(as);
        if (!json_is_array(fj) || json_array_size(fj) != (size_t)n->n) {
            eddy__seterr(b->errstr, b->errstr_size,
                         "%s: record '%s': cannot match its JSON 'fields' to Avro C's schema",
                         path, n->name);
            return NULL;
        }
        sn_named_add(b, as, n);
        n->building = true;
        n->fields = own_calloc(o, (size_t)n->n, sizeof(sfield_t));
        for (int i = 0; i < n->n; i++) {
            sfield_t *f = &n->fields[i];
            json_t *fo = json_array_get(fj, (size_t)i);
            f->name = avro_schema_record_field_name(as, i);
            read_aliases(o, fo, &f->aliases, &f->naliases);
            f->def = json_object_get(fo, "default");
            char *sub = eddy_asprintf("%s.%s", path, f->name);
            f->type = sn_build(b, avro_schema_record_field_get_by_index(as, i),
                               json_object_get(fo, "type"), sub);
            eddy_free(sub);
            if (!f->type)
                return NULL;
            n->min_bytes += f->type->min_bytes;
        }
        n->building = false;
        break;
    }
    case AVRO_ENUM: {
        n->kind = K_ENUM;
        n->min_bytes = 1;
        n->name = avro_schema_name(as);
        read_aliases(o, js, &n->aliases, &n->naliases);
        n->n = avro_schema_enum_number_of_symbols(as);
        n->symbols = own_calloc(o, (size_t)n->n, sizeof(char *));
        for (int i = 0; i < n->n; i++)
            n->symbols[i] = avro_schema_enum_get(as, i);
        const char *d =
            json_is_object(js) ? json_string_value(json_object_get(js, "default")) : NULL;
        if (d) {
            for (int i = 0; i < n->n; i++)
                if (!strcmp(n->symbols[i], d))
                    n->enum_def = i;
            if (n->enum_def < 0) {
                eddy__seterr(b->errstr, b->errstr_size,
                             "%s: enum '%s': default '%s' is not one of its symbols", path,
                             n->name, d);
                return NULL;
            }
        }
        sn_named_add(b, as, n);
        break;
    }
    case AVRO_FIXED:
        n->kind = K_FIXED;
        n->name = avro_schema_name(as);
        read_aliases(o, js, &n->aliases, &n->naliases);
        n->size = avro_schema_fixed_size(as);
        n->min_bytes = (size_t)n->size;
        sn_named_add(b, as, n);
        break;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool arr = avro_typeof(as) == AVRO_ARRAY;
        n->kind = arr ? K_ARRAY : K_MAP;
        n->min_bytes = 1;
        char *sub = eddy_asprintf("%s%s", path, arr ? "[]" : "{}");
        n->items = sn_build(b, arr ? avro_schema_array_items(as) : avro_schema_map_values(as),
                            json_is_object(js) ? json_object_get(js, arr ? "items" : "values")
                                               : NULL,
                            sub);
        eddy_free(sub);
        if (!n->items)
            return NULL;
        break;
    }
    case AVRO_UNION: {
        n->kind = K_UNION;
        n->min_bytes = 1;
        n->n = (int)avro_schema_union_size(as);
        n->branches = own_calloc(o, (size_t)n->n, sizeof(snode_t *));
        for (int i = 0; i < n->n; i++) {
            n->branches[i] = sn_build(b, avro_schema_union_branch(as, i),
                                      json_is_array(js) ? json_array_get(js, (size_t)i) : NULL,
                                      path);
            if (!n->branches[i])
                return NULL;
        }
        break;
    }
    default:
        eddy__seterr(b->errstr, b->errstr_size, "%s: unsupported Avro type %d", path,
                     (int)avro_typeof(as));
        return NULL;
    }
    n->lt = read_lt(js, n->kind);
    return n;
}

/* Named types (record, error, enum, fixed) defined twice under one full
 * name. Avro C refuses such a schema but leaks the second definition
 * (found by fuzz/fuzz_avro.c), and a registry is untrusted input, so they
 * are refused here first. Full names follow the specification: a dotted
 * name is full, otherwise the type's own namespace or the enclosing
 * one's is prepended. */
typedef struct {
    char **names;
    int n, cap;
    char *dup; /* the first full name seen twice */
} defs_t;

static void defs_walk(defs_t *d, const json_t *node, const char *ns) {
    if (d->dup || !node)
        return;
    if (json_is_array(node)) { /* a union */
        for (size_t i = 0; i < json_array_size(node); i++)
            defs_walk(d, json_array_get(node, i), ns);
        return;
    }
    if (!json_is_object(node))
        return;
    const char *type = json_string_value(json_object_get(node, "type"));
    const char *name = json_string_value(json_object_get(node, "name"));
    char *full = NULL;
    if (type && name &&
        (!strcmp(type, "record") || !strcmp(type, "error") || !strcmp(type, "enum") ||
         !strcmp(type, "fixed"))) {
        const char *own = json_string_value(json_object_get(node, "namespace"));
        const char *space = own ? own : ns;
        if (strchr(name, '.') || !space || !*space) {
            full = eddy_strdup(name);
        } else {
            size_t n = strlen(space) + strlen(name) + 2;
            full = eddy_malloc(n);
            snprintf(full, n, "%s.%s", space, name);
        }
        for (int i = 0; i < d->n; i++)
            if (!strcmp(d->names[i], full)) {
                d->dup = full;
                return;
            }
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 8;
            d->names = eddy_realloc(d->names, sizeof(*d->names) * (size_t)d->cap);
        }
        d->names[d->n++] = full;
        const char *dot = strrchr(full, '.');
        ns = NULL;
        if (dot) { /* the enclosing namespace of what this type contains */
            full = eddy_strndup(full, (size_t)(dot - full));
            ns = full;
        } else {
            full = NULL;
        }
    }
    const json_t *fields = json_object_get(node, "fields");
    if (type && (!strcmp(type, "record") || !strcmp(type, "error")))
        for (size_t i = 0; i < json_array_size(fields); i++)
            defs_walk(d, json_object_get(json_array_get(fields, i), "type"), ns);
    if (!type || (strcmp(type, "record") && strcmp(type, "error")))
        defs_walk(d, json_object_get(node, "type"), ns);
    defs_walk(d, json_object_get(node, "items"), ns);
    defs_walk(d, json_object_get(node, "values"), ns);
    eddy_free(full);
}

/* The full name defined twice in the schema JSON (free it), or NULL. */
static char *duplicate_definition(const json_t *root) {
    defs_t d = {0};
    defs_walk(&d, root, NULL);
    for (int i = 0; i < d.n; i++)
        eddy_free(d.names[i]);
    eddy_free(d.names);
    return d.dup;
}

eddy_avro_schema_t *eddy__avro_schema_parse(const char *json, size_t len, char *errstr,
                                            size_t errstr_size) {
    json_t *pre = json_loadb(json, len, JSON_DECODE_ANY, NULL);
    char *dup = pre ? duplicate_definition(pre) : NULL;
    json_decref(pre);
    if (dup) {
        eddy__seterr(errstr, errstr_size,
                     "invalid Avro schema: the named type '%s' is defined twice", dup);
        eddy_free(dup);
        return NULL;
    }
    avro_schema_t as;
    if (avro_schema_from_json_length(json, len, &as)) {
        eddy__seterr(errstr, errstr_size, "invalid Avro schema: %s", avro_strerror());
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root) { /* Avro C accepted it, so this is unexpected */
        avro_schema_decref(as);
        eddy__seterr(errstr, errstr_size, "invalid Avro schema JSON: %s", jerr.text);
        return NULL;
    }
    eddy_avro_schema_t *sch = eddy_calloc(1, sizeof(*sch));
    sch->as = as;
    sch->root = root;
    sch->json = eddy_strndup(json, len);
    sch->hash = eddy__hash64(json, len);
    sbuild_t b = {.sch = sch, .errstr = errstr, .errstr_size = errstr_size};
    const char *top_name = is_avro_named_type(as) ? avro_schema_name(as) : avro_schema_type_name(as);
    sch->top = sn_build(&b, as, root, top_name ? top_name : "value");
    eddy_free(b.named_as);
    eddy_free(b.named_node);
    if (!sch->top) {
        eddy__avro_schema_destroy(sch);
        return NULL;
    }
    return sch;
}

void eddy__avro_schema_destroy(eddy_avro_schema_t *sch) {
    if (!sch)
        return;
    owned_free(&sch->mem);
    json_decref(sch->root);
    avro_schema_decref(sch->as);
    eddy_free(sch->json);
    eddy_free(sch);
}

const char *eddy__avro_schema_json(const eddy_avro_schema_t *sch) { return sch->json; }
uint64_t eddy__avro_schema_hash(const eddy_avro_schema_t *sch) { return sch->hash; }

/* "long", "record Bid", "union [null, string]" */
static void desc(const snode_t *n, char *buf, size_t size) {
    if (n->kind == K_RECORD || n->kind == K_ENUM || n->kind == K_FIXED) {
        snprintf(buf, size, "%s %s", kind_names[n->kind], n->name);
    } else if (n->kind == K_UNION) {
        size_t w = (size_t)snprintf(buf, size, "union [");
        for (int i = 0; i < n->n && w < size; i++) {
            char sub[64];
            desc(n->branches[i], sub, sizeof(sub));
            w += (size_t)snprintf(buf + w, size - w, "%s%s", i ? ", " : "", sub);
        }
        if (w < size)
            snprintf(buf + w, size - w, "]");
    } else if (n->kind == K_ARRAY || n->kind == K_MAP) {
        char sub[64];
        desc(n->items, sub, sizeof(sub));
        snprintf(buf, size, "%s<%s>", kind_names[n->kind], sub);
    } else {
        snprintf(buf, size, "%s", kind_names[n->kind]);
    }
}

/* ============================================================ layout */

typedef enum { RL_PRIM, RL_NULL, RL_RECORD, RL_OPT, RL_JSON } rlkind_t;

typedef struct rl_s {
    rlkind_t k;
    const snode_t *r;
    int lo, hi;           /* columns [lo, hi) */
    eddy_type_t type;     /* PRIM, JSON */
    struct rl_s *kids;    /* RECORD: per reader field; OPT: the non-null branch */
    int nkids;
    int null_branch;      /* OPT, JSON: index of "null" in the reader union, or -1 */
    char *path;           /* for messages: Record.field.sub */
} rl_t;

static eddy_type_t etype_of(const snode_t *r) {
    switch (r->kind) {
    case K_NULL:
        return EDDY_TYPE_NULL;
    case K_BOOL:
        return EDDY_TYPE_BOOL;
    case K_INT:
    case K_LONG:
        return (r->lt == LT_TS_MS || r->lt == LT_TS_US || r->lt == LT_TS_NS || r->lt == LT_DATE)
                   ? EDDY_TYPE_TIMESTAMP
                   : EDDY_TYPE_INT;
    case K_FLOAT:
    case K_DOUBLE:
        return EDDY_TYPE_DOUBLE;
    case K_BYTES:
    case K_FIXED:
        return EDDY_TYPE_BYTES;
    default:
        return EDDY_TYPE_STRING; /* string, enum, and JSON text */
    }
}

static int union_null_branch(const snode_t *u) {
    for (int i = 0; i < u->n; i++)
        if (u->branches[i]->kind == K_NULL)
            return i;
    return -1;
}

static void rl_free(rl_t *rl) {
    for (int i = 0; i < rl->nkids; i++)
        rl_free(&rl->kids[i]);
    eddy_free(rl->kids);
    eddy_free(rl->path);
}

static int rl_leaf(rl_t *rl, eddy_schema_t *s, const char *col, bool nullable, char *errstr,
                   size_t errstr_size) {
    int idx = eddy__schema_add(s, col, rl->type);
    if (idx < 0) {
        eddy__seterr(errstr, errstr_size, "%s: column '%s' appears twice in the flattened row",
                     rl->path, col);
        return -1;
    }
    s->fields[idx].nullable = nullable || rl->type == EDDY_TYPE_NULL;
    rl->lo = idx;
    rl->hi = idx + 1;
    return 0;
}

static int rl_build(rl_t *rl, const snode_t *r, const char *col, const char *path, bool nullable,
                    eddy_schema_t *s, char *errstr, size_t errstr_size) {
    memset(rl, 0, sizeof(*rl));
    rl->r = r;
    rl->null_branch = -1;
    rl->path = eddy_strdup(path);
    switch (r->kind) {
    case K_RECORD:
        rl->k = RL_RECORD;
        rl->lo = s->nfields;
        rl->kids = eddy_calloc((size_t)(r->n ? r->n : 1), sizeof(rl_t));
        for (int i = 0; i < r->n; i++) {
            const sfield_t *f = &r->fields[i];
            char *c = col ? eddy_asprintf("%s.%s", col, f->name) : eddy_strdup(f->name);
            char *p = eddy_asprintf("%s.%s", path, f->name);
            int rc = rl_build(&rl->kids[i], f->type, c, p, nullable, s, errstr, errstr_size);
            rl->nkids = i + 1;
            eddy_free(c);
            eddy_free(p);
            if (rc)
                return -1;
        }
        rl->hi = s->nfields;
        return 0;
    case K_UNION: {
        int nonnull = -1, count = 0;
        rl->null_branch = union_null_branch(r);
        for (int i = 0; i < r->n; i++)
            if (r->branches[i]->kind != K_NULL) {
                nonnull = i;
                count++;
            }
        bool nb = nullable || rl->null_branch >= 0;
        if (count == 1) {
            rl->k = RL_OPT;
            rl->kids = eddy_calloc(1, sizeof(rl_t));
            rl->nkids = 1;
            if (rl_build(rl->kids, r->branches[nonnull], col, path, nb, s, errstr, errstr_size))
                return -1;
            rl->lo = rl->kids->lo;
            rl->hi = rl->kids->hi;
            return 0;
        }
        rl->k = count == 0 ? RL_NULL : RL_JSON;
        rl->type = count == 0 ? EDDY_TYPE_NULL : EDDY_TYPE_STRING;
        return rl_leaf(rl, s, col ? col : "value", nb, errstr, errstr_size);
    }
    case K_ARRAY:
    case K_MAP:
        rl->k = RL_JSON;
        rl->type = EDDY_TYPE_STRING;
        return rl_leaf(rl, s, col ? col : "value", nullable, errstr, errstr_size);
    case K_NULL:
        rl->k = RL_NULL;
        rl->type = EDDY_TYPE_NULL;
        return rl_leaf(rl, s, col ? col : "value", true, errstr, errstr_size);
    default:
        rl->k = RL_PRIM;
        rl->type = etype_of(r);
        return rl_leaf(rl, s, col ? col : "value", nullable, errstr, errstr_size);
    }
}

static eddy_schema_t *layout(const eddy_avro_schema_t *reader, rl_t *rl, char *errstr,
                             size_t errstr_size) {
    eddy_schema_t *s = eddy__schema_new_empty();
    const snode_t *top = reader->top;
    const char *name = top->kind == K_RECORD ? top->name : kind_names[top->kind];
    if (rl_build(rl, top, NULL, name, false, s, errstr, errstr_size)) {
        rl_free(rl);
        eddy__schema_unref(s);
        return NULL;
    }
    return s;
}

eddy_schema_t *eddy__avro_engine_schema(const eddy_avro_schema_t *reader, char *errstr,
                                        size_t errstr_size) {
    rl_t rl;
    eddy_schema_t *s = layout(reader, &rl, errstr, errstr_size);
    if (s)
        rl_free(&rl);
    return s;
}

/* ============================================================ plan */

typedef enum {
    OP_INT32,  /* writer int: varint <= 5 bytes in int32 range; a = conv */
    OP_INT64,  /* writer long; a = conv */
    OP_F32,    /* writer float -> double */
    OP_F64,
    OP_BOOL,
    OP_STR,    /* length-prefixed, UTF-8 checked -> STRING */
    OP_BYTES,  /* length-prefixed -> BYTES */
    OP_FIXED,  /* b bytes -> BYTES */
    OP_ENUM,   /* a = writer symbols, p = enum_map_t[a] */
    OP_NULLS,  /* columns [slot, a) = NULL; JSON mode: null */
    OP_DEFAULT,/* column slot = *(eddy_value_t *)p */
    OP_JRAW,   /* JSON mode: append p[0..b) */
    OP_UNION,  /* a = branches, p = prog_t *[a] */
    OP_JSON,   /* column slot = JSON text of sub-program p */
    OP_ARRAY,  /* p = item prog; a = 1: render JSON, 0: skip; b = min item bytes */
    OP_MAP,
    OP_ERROR,  /* p = message: a writer union branch the reader cannot take */
    OP_SKIP_VARINT, /* a = max bytes */
    OP_SKIP_N,      /* b bytes */
    OP_SKIP_BLOB,
    /* row-mode specialisations of the commonest ops (no conversion, no
     * JSON): chosen by finish_prog() */
    OP_LONG_COL,
    OP_STR_COL
} opcode_t;

typedef enum { CONV_NONE, CONV_US, CONV_NS, CONV_DAYS, CONV_DOUBLE, CONV_FLOAT } conv_t;

typedef struct op_s {
    uint8_t code;
    uint8_t vt;   /* eddy_type_t written */
    int32_t slot; /* column, or -1: JSON mode */
    int32_t a;
    int32_t path; /* index into plan->paths */
    int64_t b;
    const void *p;
} op_t;

typedef struct prog_s {
    op_t *ops;
    int n, cap;
} prog_t;

typedef struct {
    const char *w_name; /* writer symbol, for messages */
    const char *s;      /* reader symbol, NULL: unknown to the reader */
    uint32_t len;
} enum_map_t;

struct eddy_avro_plan_s {
    prog_t *root;
    eddy_schema_t *schema;
    char **paths;
    int npaths, cappaths;
    owned_t progs; /* prog_t *: their ops arrays grow, so they are freed apart */
    owned_t mem;
};

typedef struct {
    eddy_avro_plan_t *plan;
    char *errstr;
    size_t errstr_size;
} cbuild_t;

static prog_t *prog_new(cbuild_t *cb) { return own_calloc(&cb->plan->progs, 1, sizeof(prog_t)); }

static op_t *emit(cbuild_t *cb, prog_t *pg, opcode_t code, int slot, int path) {
    if (pg->n == pg->cap) {
        pg->cap = pg->cap ? pg->cap * 2 : 8;
        pg->ops = eddy_realloc(pg->ops, sizeof(op_t) * (size_t)pg->cap);
    }
    op_t *op = &pg->ops[pg->n++];
    memset(op, 0, sizeof(*op));
    op->code = (uint8_t)code;
    op->slot = slot;
    op->path = path;
    return op;
}

static int path_id(cbuild_t *cb, const char *path) {
    eddy_avro_plan_t *pl = cb->plan;
    if (pl->npaths && !strcmp(pl->paths[pl->npaths - 1], path))
        return pl->npaths - 1;
    if (pl->npaths == pl->cappaths) {
        pl->cappaths = pl->cappaths ? pl->cappaths * 2 : 16;
        pl->paths = eddy_realloc(pl->paths, sizeof(char *) * (size_t)pl->cappaths);
    }
    pl->paths[pl->npaths] = eddy_strdup(path);
    return pl->npaths++;
}

static bool name_matches(const snode_t *w, const snode_t *r) {
    if (!strcmp(w->name, r->name))
        return true;
    for (int i = 0; i < r->naliases; i++)
        if (!strcmp(w->name, r->aliases[i]))
            return true;
    return false;
}

/* Same type (named types: same name or a reader alias). */
static bool exact_match(const snode_t *w, const snode_t *r) {
    if (w->kind != r->kind)
        return false;
    if (w->kind == K_RECORD || w->kind == K_ENUM)
        return name_matches(w, r);
    if (w->kind == K_FIXED)
        return name_matches(w, r) && w->size == r->size;
    return true;
}

static bool promotable(kind_t w, kind_t r) {
    switch (w) {
    case K_INT:
        return r == K_LONG || r == K_FLOAT || r == K_DOUBLE;
    case K_LONG:
        return r == K_FLOAT || r == K_DOUBLE;
    case K_FLOAT:
        return r == K_DOUBLE;
    case K_STRING:
        return r == K_BYTES;
    case K_BYTES:
        return r == K_STRING;
    default:
        return false;
    }
}

/* First reader union branch that matches w: exact first, then promotable. */
static int pick_branch(const snode_t *w, const snode_t *ru) {
    for (int i = 0; i < ru->n; i++)
        if (exact_match(w, ru->branches[i]))
            return i;
    for (int i = 0; i < ru->n; i++)
        if (promotable(w->kind, ru->branches[i]->kind))
            return i;
    return -1;
}

static int mismatch(cbuild_t *cb, const char *path, const snode_t *w, const snode_t *r) {
    char wd[160], rd[160];
    desc(w, wd, sizeof(wd));
    desc(r, rd, sizeof(rd));
    if (w->kind == r->kind && (w->kind == K_RECORD || w->kind == K_ENUM || w->kind == K_FIXED)) {
        if (w->kind == K_FIXED && w->size != r->size)
            eddy__seterr(cb->errstr, cb->errstr_size,
                         "%s: writer fixed %s of %" PRId64 " bytes cannot be read as fixed %s of "
                         "%" PRId64 " bytes",
                         path, w->name, w->size, r->name, r->size);
        else
            eddy__seterr(cb->errstr, cb->errstr_size,
                         "%s: writer %s cannot be read as %s (names differ; a reader alias "
                         "'%s' would match)",
                         path, wd, rd, w->name);
    } else {
        eddy__seterr(cb->errstr, cb->errstr_size, "%s: writer type %s cannot be read as %s", path,
                     wd, rd);
    }
    return -1;
}

static conv_t ts_conv(lt_t lt) {
    switch (lt) {
    case LT_TS_US:
    case LT_TIME_US:
        return CONV_US;
    case LT_TS_NS:
        return CONV_NS;
    case LT_DATE:
        return CONV_DAYS;
    default:
        return CONV_NONE;
    }
}

/* One writer primitive/enum/fixed value into one column (or JSON). */
static int compile_prim(cbuild_t *cb, prog_t *pg, const snode_t *w, const snode_t *r, int slot,
                        const char *path) {
    int pid = path_id(cb, path);
    eddy_type_t vt = etype_of(r);
    op_t *op;
    if (!exact_match(w, r) && !promotable(w->kind, r->kind))
        return mismatch(cb, path, w, r);
    switch (r->kind) {
    case K_BOOL:
        emit(cb, pg, OP_BOOL, slot, pid)->vt = EDDY_TYPE_BOOL;
        return 0;
    case K_INT:
    case K_LONG:
        op = emit(cb, pg, w->kind == K_INT ? OP_INT32 : OP_INT64, slot, pid);
        op->vt = (uint8_t)vt;
        if (vt == EDDY_TYPE_TIMESTAMP) /* the writer's unit when it states one */
            op->a = etype_of(w) == EDDY_TYPE_TIMESTAMP ? ts_conv(w->lt) : ts_conv(r->lt);
        else
            op->a = ts_conv(r->lt); /* time-micros -> ms */
        return 0;
    case K_FLOAT:
    case K_DOUBLE:
        if (w->kind == K_FLOAT || w->kind == K_DOUBLE) {
            emit(cb, pg, w->kind == K_FLOAT ? OP_F32 : OP_F64, slot, pid)->vt = EDDY_TYPE_DOUBLE;
        } else {
            op = emit(cb, pg, w->kind == K_INT ? OP_INT32 : OP_INT64, slot, pid);
            op->vt = EDDY_TYPE_DOUBLE;
            op->a = r->kind == K_FLOAT ? CONV_FLOAT : CONV_DOUBLE;
        }
        return 0;
    case K_STRING:
        emit(cb, pg, OP_STR, slot, pid)->vt = EDDY_TYPE_STRING;
        return 0;
    case K_BYTES:
        emit(cb, pg, OP_BYTES, slot, pid)->vt = EDDY_TYPE_BYTES;
        return 0;
    case K_FIXED:
        op = emit(cb, pg, OP_FIXED, slot, pid);
        op->vt = EDDY_TYPE_BYTES;
        op->b = r->size;
        return 0;
    case K_ENUM: {
        enum_map_t *m = own_calloc(&cb->plan->mem, (size_t)w->n, sizeof(*m));
        for (int i = 0; i < w->n; i++) {
            m[i].w_name = own_strdup(&cb->plan->mem, w->symbols[i]);
            int j = -1;
            for (int k = 0; k < r->n; k++)
                if (!strcmp(r->symbols[k], w->symbols[i]))
                    j = k;
            if (j < 0)
                j = r->enum_def;
            if (j >= 0) {
                m[i].s = own_strdup(&cb->plan->mem, r->symbols[j]);
                m[i].len = (uint32_t)strlen(m[i].s);
            }
        }
        op = emit(cb, pg, OP_ENUM, slot, pid);
        op->vt = EDDY_TYPE_STRING;
        op->a = w->n;
        op->p = m;
        return 0;
    }
    default:
        return mismatch(cb, path, w, r);
    }
}

static int compile_skip(cbuild_t *cb, prog_t *pg, const snode_t *w, const char *path);

static void emit_jraw(cbuild_t *cb, prog_t *pg, const char *text, int pid) {
    char *t = own_strdup(&cb->plan->mem, text);
    op_t *op = emit(cb, pg, OP_JRAW, -1, pid);
    op->p = t;
    op->b = (int64_t)strlen(t);
}

static char *json_text(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *r = eddy_strdup(s ? s : "null");
    free(s);
    return r;
}

/* A writer union: one sub-program per writer branch; a branch the reader
 * cannot take becomes an error at decode time (the spec's rule), unless no
 * branch can be taken at all. */
typedef int (*compile_fn)(cbuild_t *cb, prog_t *pg, const snode_t *w, const void *r,
                          const char *path);

static int compile_wunion(cbuild_t *cb, prog_t *pg, const snode_t *w, const void *r,
                          const char *path, compile_fn fn, int slot) {
    prog_t **br = own_calloc(&cb->plan->mem, (size_t)w->n, sizeof(prog_t *));
    char first_err[512] = "";
    int ok = 0;
    for (int i = 0; i < w->n; i++) {
        br[i] = prog_new(cb);
        char err[512] = "";
        cbuild_t sub = {.plan = cb->plan, .errstr = err, .errstr_size = sizeof(err)};
        if (fn(&sub, br[i], w->branches[i], r, path) == 0) {
            ok++;
            continue;
        }
        if (!first_err[0])
            snprintf(first_err, sizeof(first_err), "%s", err);
        br[i]->n = 0;
        char *msg = own(&cb->plan->mem, eddy_asprintf("writer union branch %d: %s", i, err));
        emit(cb, br[i], OP_ERROR, -1, path_id(cb, path))->p = msg;
    }
    if (!ok) {
        eddy__seterr(cb->errstr, cb->errstr_size, "%s", first_err);
        return -1;
    }
    op_t *op = emit(cb, pg, OP_UNION, slot, path_id(cb, path));
    op->a = w->n;
    op->p = br;
    return 0;
}

static int compile_json(cbuild_t *cb, prog_t *pg, const snode_t *w, const void *rv,
                        const char *path);

static int compile_container(cbuild_t *cb, prog_t *pg, const snode_t *w, const snode_t *r,
                             const char *path, bool render) {
    bool arr = w->kind == K_ARRAY;
    char *sub = eddy_asprintf("%s%s", path, arr ? "[]" : "{}");
    prog_t *items = prog_new(cb);
    int rc = render ? compile_json(cb, items, w->items, r->items, sub)
                    : compile_skip(cb, items, w->items, sub);
    eddy_free(sub);
    if (rc)
        return -1;
    op_t *op = emit(cb, pg, arr ? OP_ARRAY : OP_MAP, -1, path_id(cb, path));
    op->a = render;
    op->b = (int64_t)w->items->min_bytes;
    op->p = items;
    return 0;
}

/* Match writer record fields to reader fields: by name, then by a reader
 * field alias. Returns the reader field index or -1. */
static int match_field(const snode_t *w, int wi, const snode_t *r, const bool *used) {
    const char *name = w->fields[wi].name;
    for (int j = 0; j < r->n; j++)
        if (!used[j] && !strcmp(r->fields[j].name, name))
            return j;
    for (int j = 0; j < r->n; j++)
        if (!used[j])
            for (int k = 0; k < r->fields[j].naliases; k++)
                if (!strcmp(r->fields[j].aliases[k], name))
                    return j;
    return -1;
}

static int no_default(cbuild_t *cb, const char *rpath, const sfield_t *rf) {
    eddy__seterr(cb->errstr, cb->errstr_size,
                 "%s: reader field has no default and the writer has no field '%s'%s", rpath,
                 rf->name, rf->naliases ? " (nor one of its aliases)" : "");
    return -1;
}

/* Writer value -> JSON text (slot -1 ops). */
static int compile_json(cbuild_t *cb, prog_t *pg, const snode_t *w, const void *rv,
                        const char *path) {
    const snode_t *r = rv;
    if (w->kind == K_UNION)
        return compile_wunion(cb, pg, w, r, path, compile_json, -1);
    if (r->kind == K_UNION) {
        if (w->kind == K_NULL && union_null_branch(r) >= 0) {
            emit(cb, pg, OP_NULLS, -1, path_id(cb, path));
            return 0;
        }
        int i = pick_branch(w, r);
        if (i < 0)
            return mismatch(cb, path, w, r);
        return compile_json(cb, pg, w, r->branches[i], path);
    }
    if (!exact_match(w, r) && !promotable(w->kind, r->kind))
        return mismatch(cb, path, w, r);
    switch (r->kind) {
    case K_NULL:
        emit(cb, pg, OP_NULLS, -1, path_id(cb, path));
        return 0;
    case K_ARRAY:
    case K_MAP:
        return compile_container(cb, pg, w, r, path, true);
    case K_RECORD: {
        int pid = path_id(cb, path);
        bool *used = eddy_calloc((size_t)(r->n ? r->n : 1), 1);
        int nkeys = 0, rc = 0;
        emit_jraw(cb, pg, "{", pid);
        for (int i = 0; i < w->n && !rc; i++) {
            const sfield_t *wf = &w->fields[i];
            int j = match_field(w, i, r, used);
            char *sub = eddy_asprintf("%s.%s", path, j >= 0 ? r->fields[j].name : wf->name);
            if (j < 0) {
                rc = compile_skip(cb, pg, wf->type, sub);
            } else {
                used[j] = true;
                eddy_buf_t k = {0};
                if (nkeys++)
                    eddy_buf_putc(&k, ',');
                eddy__json_encode_str(&k, r->fields[j].name, strlen(r->fields[j].name));
                eddy_buf_putc(&k, ':');
                eddy_buf_putc(&k, 0);
                emit_jraw(cb, pg, k.p, pid);
                eddy_buf_free(&k);
                rc = compile_json(cb, pg, wf->type, r->fields[j].type, sub);
            }
            eddy_free(sub);
        }
        for (int j = 0; j < r->n && !rc; j++) {
            if (used[j])
                continue;
            const sfield_t *rf = &r->fields[j];
            char *sub = eddy_asprintf("%s.%s", path, rf->name);
            if (!rf->def) {
                rc = no_default(cb, sub, rf);
            } else {
                eddy_buf_t k = {0};
                if (nkeys++)
                    eddy_buf_putc(&k, ',');
                eddy__json_encode_str(&k, rf->name, strlen(rf->name));
                eddy_buf_putc(&k, ':');
                char *t = json_text(rf->def);
                eddy_buf_put(&k, t, strlen(t) + 1);
                eddy_free(t);
                emit_jraw(cb, pg, k.p, pid);
                eddy_buf_free(&k);
            }
            eddy_free(sub);
        }
        eddy_free(used);
        if (rc)
            return -1;
        emit_jraw(cb, pg, "}", pid);
        return 0;
    }
    default:
        return compile_prim(cb, pg, w, r, -1, path);
    }
}

static int compile_skip(cbuild_t *cb, prog_t *pg, const snode_t *w, const char *path) {
    int pid = path_id(cb, path);
    switch (w->kind) {
    case K_NULL:
        return 0;
    case K_BOOL:
        emit(cb, pg, OP_SKIP_N, -1, pid)->b = 1;
        return 0;
    case K_INT:
    case K_ENUM:
        emit(cb, pg, OP_SKIP_VARINT, -1, pid)->a = 5;
        return 0;
    case K_LONG:
        emit(cb, pg, OP_SKIP_VARINT, -1, pid)->a = 10;
        return 0;
    case K_FLOAT:
    case K_DOUBLE:
    case K_FIXED:
        emit(cb, pg, OP_SKIP_N, -1, pid)->b = (int64_t)w->min_bytes;
        return 0;
    case K_STRING:
    case K_BYTES:
        emit(cb, pg, OP_SKIP_BLOB, -1, pid);
        return 0;
    case K_RECORD:
        for (int i = 0; i < w->n; i++) {
            char *sub = eddy_asprintf("%s.%s", path, w->fields[i].name);
            int rc = compile_skip(cb, pg, w->fields[i].type, sub);
            eddy_free(sub);
            if (rc)
                return -1;
        }
        return 0;
    case K_ARRAY:
    case K_MAP:
        return compile_container(cb, pg, w, NULL, path, false);
    case K_UNION: {
        prog_t **br = own_calloc(&cb->plan->mem, (size_t)w->n, sizeof(prog_t *));
        for (int i = 0; i < w->n; i++) {
            br[i] = prog_new(cb);
            if (compile_skip(cb, br[i], w->branches[i], path))
                return -1;
        }
        op_t *op = emit(cb, pg, OP_UNION, -1, pid);
        op->a = w->n;
        op->p = br;
        return 0;
    }
    }
    return 0;
}

/* ---- defaults */

static int bad_default(cbuild_t *cb, const char *path, json_t *def, const char *expected) {
    char *t = json_text(def);
    eddy__seterr(cb->errstr, cb->errstr_size, "%s: default %.80s is not %s", path, t, expected);
    eddy_free(t);
    return -1;
}

static eddy_value_t *default_value(cbuild_t *cb, int slot, eddy_type_t vt, prog_t *pg, int pid) {
    eddy_value_t *v = own_calloc(&cb->plan->mem, 1, sizeof(*v));
    v->type = (uint8_t)vt;
    op_t *op = emit(cb, pg, OP_DEFAULT, slot, pid);
    op->p = v;
    return v;
}

static int compile_default_prim(cbuild_t *cb, prog_t *pg, const rl_t *rl, json_t *def) {
    const snode_t *r = rl->r;
    const char *path = rl->path;
    int pid = path_id(cb, path);
    switch (r->kind) {
    case K_BOOL:
        if (!json_is_boolean(def))
            return bad_default(cb, path, def, "a boolean");
        default_value(cb, rl->lo, rl->type, pg, pid)->u.i = json_is_true(def);
        return 0;
    case K_INT:
    case K_LONG: {
        if (!json_is_integer(def))
            return bad_default(cb, path, def, r->kind == K_INT ? "an int" : "a long");
        int64_t x = json_integer_value(def);
        if (r->kind == K_INT && (x < INT32_MIN || x > INT32_MAX))
            return bad_default(cb, path, def, "an int (32-bit)");
        switch (ts_conv(r->lt)) {
        case CONV_US:
            x = x >= 0 ? x / 1000 : -((-(x + 1)) / 1000) - 1;
            break;
        case CONV_NS:
            x = x >= 0 ? x / 1000000 : -((-(x + 1)) / 1000000) - 1;
            break;
        case CONV_DAYS:
            x *= 86400000; /* |int32| * 86400000 fits int64 */
            break;
        default:
            break;
        }
        default_value(cb, rl->lo, rl->type, pg, pid)->u.i = x;
        return 0;
    }
    case K_FLOAT:
    case K_DOUBLE: {
        if (!json_is_number(def))
            return bad_default(cb, path, def, "a number");
        double d = json_number_value(def);
        if (r->kind == K_FLOAT)
            d = (double)(float)d;
        default_value(cb, rl->lo, rl->type, pg, pid)->u.d = d;
        return 0;
    }
    case K_STRING: {
        if (!json_is_string(def))
            return bad_default(cb, path, def, "a string");
        size_t n = json_string_length(def);
        char *s = own(&cb->plan->mem, eddy_strndup(json_string_value(def), n));
        eddy_value_t *v = default_value(cb, rl->lo, rl->type, pg, pid);
        v->u.s = s;
        v->len = (uint32_t)n;
        return 0;
    }
    case K_BYTES:
    case K_FIXED: {
        /* Avro JSON: bytes are a string of code points 0..255 */
        if (!json_is_string(def))
            return bad_default(cb, path, def, "a string of bytes");
        const unsigned char *s = (const unsigned char *)json_string_value(def);
        size_t n = json_string_length(def), k = 0;
        unsigned char *out = own_calloc(&cb->plan->mem, n + 1, 1);
        for (size_t i = 0; i < n; i++) {
            if (s[i] < 0x80) {
                out[k++] = s[i];
            } else if ((s[i] == 0xC2 || s[i] == 0xC3) && i + 1 < n) {
                out[k++] = (unsigned char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3F));
                i++;
            } else {
                return bad_default(cb, path, def, "a string of code points 0..255 (bytes)");
            }
        }
        if (r->kind == K_FIXED && (int64_t)k != r->size)
            return bad_default(cb, path, def, "as long as the fixed size");
        eddy_value_t *v = default_value(cb, rl->lo, rl->type, pg, pid);
        v->u.s = (const char *)out;
        v->len = (uint32_t)k;
        return 0;
    }
    case K_ENUM: {
        const char *sym = json_string_value(def);
        for (int i = 0; sym && i < r->n; i++)
            if (!strcmp(r->symbols[i], sym)) {
                char *s = own_strdup(&cb->plan->mem, sym);
                eddy_value_t *v = default_value(cb, rl->lo, rl->type, pg, pid);
                v->u.s = s;
                v->len = (uint32_t)strlen(s);
                return 0;
            }
        return bad_default(cb, path, def, "a symbol of the enum");
    }
    default:
        return bad_default(cb, path, def, kind_names[r->kind]);
    }
}

static int compile_default_row(cbuild_t *cb, prog_t *pg, const rl_t *rl, json_t *def) {
    int pid = path_id(cb, rl->path);
    switch (rl->k) {
    case RL_NULL:
        if (!json_is_null(def))
            return bad_default(cb, rl->path, def, "null");
        emit(cb, pg, OP_NULLS, rl->lo, pid)->a = rl->hi;
        return 0;
    case RL_OPT:
        if (json_is_null(def) && rl->null_branch >= 0) {
            emit(cb, pg, OP_NULLS, rl->lo, pid)->a = rl->hi;
            return 0;
        }
        return compile_default_row(cb, pg, rl->kids, def);
    case RL_JSON: {
        if (json_is_null(def) && rl->null_branch >= 0) {
            emit(cb, pg, OP_NULLS, rl->lo, pid)->a = rl->hi;
            return 0;
        }
        char *t = own(&cb->plan->mem, json_text(def));
        eddy_value_t *v = default_value(cb, rl->lo, EDDY_TYPE_STRING, pg, pid);
        v->u.s = t;
        v->len = (uint32_t)strlen(t);
        return 0;
    }
    case RL_RECORD:
        if (!json_is_object(def))
            return bad_default(cb, rl->path, def, "an object (record default)");
        for (int i = 0; i < rl->nkids; i++) {
            const sfield_t *f = &rl->r->fields[i];
            json_t *v = json_object_get(def, f->name);
            if (!v)
                v = f->def;
            if (!v) {
                eddy__seterr(cb->errstr, cb->errstr_size,
                             "%s: the record default has no member '%s' and the field has no "
                             "default",
                             rl->path, f->name);
                return -1;
            }
            if (compile_default_row(cb, pg, &rl->kids[i], v))
                return -1;
        }
        return 0;
    case RL_PRIM:
        return compile_default_prim(cb, pg, rl, def);
    }
    return -1;
}

/* Writer value -> reader layout (row mode). */
static int compile_row(cbuild_t *cb, prog_t *pg, const snode_t *w, const void *rlv,
                       const char *wpath) {
    const rl_t *rl = rlv;
    (void)wpath;
    if (w->kind == K_UNION)
        return compile_wunion(cb, pg, w, rl, rl->path, compile_row, -1);
    int pid = path_id(cb, rl->path);
    switch (rl->k) {
    case RL_NULL:
        if (w->kind != K_NULL)
            return mismatch(cb, rl->path, w, rl->r);
        emit(cb, pg, OP_NULLS, rl->lo, pid)->a = rl->hi;
        return 0;
    case RL_OPT:
        if (w->kind == K_NULL) {
            if (rl->null_branch < 0)
                return mismatch(cb, rl->path, w, rl->r);
            emit(cb, pg, OP_NULLS, rl->lo, pid)->a = rl->hi;
            return 0;
        }
        return compile_row(cb, pg, w, rl->kids, wpath);
    case RL_JSON: {
        if (w->kind == K_NULL && rl->null_branch >= 0) {
            emit(cb, pg, OP_NULLS, rl->lo, pid)->a = rl->hi;
            return 0;
        }
        prog_t *sub = prog_new(cb);
        if (compile_json(cb, sub, w, rl->r, rl->path))
            return -1;
        op_t *op = emit(cb, pg, OP_JSON, rl->lo, pid);
        op->vt = EDDY_TYPE_STRING;
        op->p = sub;
        return 0;
    }
    case RL_RECORD: {
        const snode_t *r = rl->r;
        if (w->kind != K_RECORD || !name_matches(w, r))
            return mismatch(cb, rl->path, w, r);
        bool *used = eddy_calloc((size_t)(r->n ? r->n : 1), 1);
        int rc = 0;
        for (int i = 0; i < w->n && !rc; i++) {
            int j = match_field(w, i, r, used);
            if (j >= 0) {
                used[j] = true;
                rc = compile_row(cb, pg, w->fields[i].type, &rl->kids[j], NULL);
            } else {
                char *sub = eddy_asprintf("%s.%s", rl->path, w->fields[i].name);
                rc = compile_skip(cb, pg, w->fields[i].type, sub);
                eddy_free(sub);
            }
        }
        for (int j = 0; j < r->n && !rc; j++) {
            if (used[j])
                continue;
            if (!r->fields[j].def)
                rc = no_default(cb, rl->kids[j].path, &r->fields[j]);
            else
                rc = compile_default_row(cb, pg, &rl->kids[j], r->fields[j].def);
        }
        eddy_free(used);
        return rc;
    }
    case RL_PRIM:
        return compile_prim(cb, pg, w, rl->r, rl->lo, rl->path);
    }
    return -1;
}

eddy_avro_plan_t *eddy__avro_plan_new(const eddy_avro_schema_t *writer,
                                      const eddy_avro_schema_t *reader, char *errstr,
                                      size_t errstr_size) {
    rl_t rl;
    eddy_schema_t *s = layout(reader, &rl, errstr, errstr_size);
    if (!s)
        return NULL;
    eddy_avro_plan_t *plan = eddy_calloc(1, sizeof(*plan));
    plan->schema = s;
    cbuild_t cb = {.plan = plan, .errstr = errstr, .errstr_size = errstr_size};
    plan->root = prog_new(&cb);
    int rc = compile_row(&cb, plan->root, writer->top, &rl, NULL);
    rl_free(&rl);
    for (int i = 0; i < plan->progs.n; i++) {
        prog_t *pg = plan->progs.p[i];
        for (int k = 0; k < pg->n; k++) {
            op_t *op = &pg->ops[k];
            if (op->slot >= 0 && op->code == OP_INT64 && op->a == CONV_NONE)
                op->code = OP_LONG_COL;
            else if (op->slot >= 0 && op->code == OP_STR && !(op->vt != EDDY_TYPE_STRING))
                op->code = OP_STR_COL;
        }
    }
    if (rc) {
        eddy__avro_plan_destroy(plan);
        return NULL;
    }
    return plan;
}

void eddy__avro_plan_destroy(eddy_avro_plan_t *plan) {
    if (!plan)
        return;
    for (int i = 0; i < plan->progs.n; i++)
        eddy_free(((prog_t *)plan->progs.p[i])->ops);
    owned_free(&plan->progs);
    owned_free(&plan->mem);
    for (int i = 0; i < plan->npaths; i++)
        eddy_free(plan->paths[i]);
    eddy_free(plan->paths);
    eddy__schema_unref(plan->schema);
    eddy_free(plan);
}

const eddy_schema_t *eddy__avro_plan_schema(const eddy_avro_plan_t *plan) { return plan->schema; }

/* ============================================================ decoding */

typedef struct {
    const uint8_t *base, *p, *end;
    eddy_value_t *vals;
    eddy_arena_t *arena;
    eddy_buf_t jb;      /* JSON text being rendered */
    eddy_value_t tmp;   /* JSON mode: the value before it is rendered */
    unsigned flags;
    const eddy_avro_plan_t *plan;
    char *reason;
    size_t reason_size;
} cur_t;

__attribute__((format(printf, 4, 5), cold, noinline)) static int fail(cur_t *c, const op_t *op,
                                                      const uint8_t *at, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    eddy__seterr(c->reason, c->reason_size, "%s: %s at byte %zu", c->plan->paths[op->path], msg,
                 (size_t)(at - c->base));
    return -1;
}

/* 0: ok; 1: truncated; 2: longer than maxb bytes or overflows 64 bits. */
static inline int rd_varint(cur_t *c, uint64_t *out, int maxb) {
    const uint8_t *p = c->p;
    if (eddy_likely(c->end - p >= 10)) { /* no bounds check per byte */
        /* Up to 8 bytes at once: find the last byte (high bit clear), mask
         * the word to it and squeeze the 7-bit groups together. */
        uint64_t w;
        memcpy(&w, p, 8); /* little-endian hosts, as everywhere in Avro C */
        uint64_t stop = ~w & 0x8080808080808080ull;
        if (eddy_likely(stop)) {
            int bits = __builtin_ctzll(stop) + 1; /* through the stop byte's bit 7 */
            int len = bits >> 3;
            if (eddy_unlikely(len > maxb))
                return 2;
            if (bits < 64)
                w &= (1ull << bits) - 1;
            w = ((w & 0x7f007f007f007f00ull) >> 1) | (w & 0x007f007f007f007full);
            w = ((w & 0x3fff00003fff0000ull) >> 2) | (w & 0x00003fff00003fffull);
            w = ((w & 0x0fffffff00000000ull) >> 4) | (w & 0x000000000fffffffull);
            *out = w;
            c->p = p + len;
            return 0;
        }
        uint64_t v = 0;
        for (int i = 0; i < maxb; i++) {
            uint64_t byte = p[i];
            v |= (byte & 0x7f) << (7 * i);
            if (byte < 0x80) {
                if (eddy_unlikely(i == 9 && byte > 1))
                    return 2;
                *out = v;
                c->p = p + i + 1;
                return 0;
            }
        }
        return 2;
    }
    uint64_t v = 0;
    for (int i = 0; i < maxb; i++) {
        if (p >= c->end)
            return 1;
        uint64_t byte = *p++;
        v |= (byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (i == 9 && byte > 1)
                return 2;
            *out = v;
            c->p = p;
            return 0;
        }
    }
    return 2;
}

static inline int64_t unzig(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

__attribute__((cold, noinline)) static int varint_fail(cur_t *c, const op_t *op, const uint8_t *at, int rc, const char *what) {
    if (rc == 1)
        return fail(c, op, at, "truncated input: %s varint runs past the end", what);
    return fail(c, op, at, "bad varint: %s longer than %d bytes", what,
                !strcmp(what, "int") || !strcmp(what, "enum index") ? 5 : 10);
}

/* Avro int: at most 5 bytes and in int32 range. */
static inline int rd_int(cur_t *c, const op_t *op, int64_t *x, const char *what) {
    const uint8_t *at = c->p;
    uint64_t u = 0;
    int rc = rd_varint(c, &u, 5);
    if (eddy_unlikely(rc))
        return varint_fail(c, op, at, rc, what);
    if (eddy_unlikely(u > UINT32_MAX))
        return fail(c, op, at, "bad varint: %s out of 32-bit range", what);
    *x = unzig(u);
    return 0;
}

static inline int rd_long(cur_t *c, const op_t *op, int64_t *x, const char *what) {
    const uint8_t *at = c->p;
    uint64_t u = 0;
    int rc = rd_varint(c, &u, 10);
    if (eddy_unlikely(rc))
        return varint_fail(c, op, at, rc, what);
    *x = unzig(u);
    return 0;
}

/* Index of the first byte of s[i..n) that is not well-formed UTF-8, or n. */
static size_t utf8_check_from(const uint8_t *s, size_t n, size_t i) {
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        unsigned lo = 0x80, hi = 0xBF;
        size_t len;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

static inline uint64_t ld64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Same from 0, with plain ASCII (most text) checked 32 bytes per step and
 * the tail by overlapping loads, so a short string costs few branches. */
static inline size_t utf8_check(const uint8_t *s, size_t n) {
    const uint64_t high = 0x8080808080808080ull;
    if (n >= 8) {
        size_t i = 0;
        for (; n - i >= 32; i += 32)
            if ((ld64(s + i) | ld64(s + i + 8) | ld64(s + i + 16) | ld64(s + i + 24)) & high)
                return utf8_check_from(s, n, i);
        uint64_t t = ld64(s + n - 8); /* the last 8..31 bytes */
        if (n - i > 8)
            t |= ld64(s + i);
        if (n - i > 16)
            t |= ld64(s + i + 8) | ld64(s + n - 16);
        return (t & high) ? utf8_check_from(s, n, i) : n;
    }
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t |= s[i];
    return (t & 0x80) ? utf8_check_from(s, n, 0) : n;
}

/* A length-prefixed blob: sets *p and *n, checks it fits. */
static inline int rd_blob(cur_t *c, const op_t *op, const uint8_t **p, size_t *n,
                          const char *what) {
    const uint8_t *at = c->p;
    int64_t len = 0;
    if (rd_long(c, op, &len, what))
        return -1;
    if (eddy_unlikely(len < 0))
        return fail(c, op, at, "negative %s length %" PRId64, what, len);
    if (eddy_unlikely((uint64_t)len > (uint64_t)(c->end - c->p)))
        return fail(c, op, at,
                    "truncated input: %s length %" PRId64 " runs past the end (%zu bytes left)",
                    what, len, (size_t)(c->end - c->p));
    if (eddy_unlikely(len > UINT32_MAX))
        return fail(c, op, at, "%s of %" PRId64 " bytes is too long", what, len);
    *p = c->p;
    *n = (size_t)len;
    c->p += len;
    return 0;
}

static void json_value(cur_t *c, const eddy_value_t *v) {
    eddy_buf_t *b = &c->jb;
    switch (v->type) {
    case EDDY_TYPE_NULL:
        eddy_buf_put(b, "null", 4);
        break;
    case EDDY_TYPE_BOOL:
        if (v->u.i)
            eddy_buf_put(b, "true", 4);
        else
            eddy_buf_put(b, "false", 5);
        break;
    case EDDY_TYPE_INT:
    case EDDY_TYPE_TIMESTAMP:
        eddy__json_encode_int(b, v->u.i);
        break;
    case EDDY_TYPE_DOUBLE:
        eddy__json_encode_double(b, v->u.d);
        break;
    case EDDY_TYPE_STRING:
        eddy__json_encode_str(b, v->u.s, v->len);
        break;
    case EDDY_TYPE_BYTES: {
        /* Avro's JSON encoding: each byte is the code point U+00XX */
        eddy_buf_t t = {0};
        eddy_buf_reserve(&t, (size_t)v->len * 2 + 1);
        for (uint32_t i = 0; i < v->len; i++) {
            unsigned char ch = (unsigned char)v->u.s[i];
            if (ch < 0x80) {
                t.p[t.len++] = (char)ch;
            } else {
                t.p[t.len++] = (char)(0xC0 | (ch >> 6));
                t.p[t.len++] = (char)(0x80 | (ch & 0x3F));
            }
        }
        eddy__json_encode_str(b, t.p, t.len);
        eddy_buf_free(&t);
        break;
    }
    }
}

static inline void put_str(cur_t *c, eddy_value_t *v, const uint8_t *p, size_t n) {
    if (c->flags & EDDY_AVRO_COPY)
        v->u.s = eddy_arena_strndup(c->arena, (const char *)p, n);
    else
        v->u.s = (const char *)p;
    v->len = (uint32_t)n;
}

static int convert(cur_t *c, const op_t *op, const uint8_t *at, int64_t x, eddy_value_t *v) {
    switch (op->a) {
    case CONV_US:
        v->u.i = x >= 0 ? x / 1000 : -((-(x + 1)) / 1000) - 1; /* floor */
        break;
    case CONV_NS:
        v->u.i = x >= 0 ? x / 1000000 : -((-(x + 1)) / 1000000) - 1;
        break;
    case CONV_DAYS:
        if (x > INT64_MAX / 86400000 || x < INT64_MIN / 86400000)
            return fail(c, op, at, "date %" PRId64 " days is out of range", x);
        v->u.i = x * 86400000;
        break;
    case CONV_DOUBLE:
        v->u.d = (double)x;
        break;
    case CONV_FLOAT:
        v->u.d = (double)(float)x;
        break;
    default:
        v->u.i = x;
        break;
    }
    v->type = op->vt;
    return 0;
}

static int run(cur_t *c, const prog_t *pg);

static int run_container(cur_t *c, const op_t *op) {
    bool arr = op->code == OP_ARRAY, render = op->a;
    const prog_t *items = op->p;
    size_t min = (size_t)op->b + (arr ? 0 : 1); /* a map entry has a key */
    bool first = true;
    if (render)
        eddy_buf_putc(&c->jb, arr ? '[' : '{');
    for (;;) {
        const uint8_t *at = c->p;
        int64_t count = 0;
        if (rd_long(c, op, &count, arr ? "array block count" : "map block count"))
            return -1;
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN)
                return fail(c, op, at, "bad block count");
            count = -count;
            const uint8_t *bat = c->p;
            int64_t bytes = 0;
            if (rd_long(c, op, &bytes, "block size"))
                return -1;
            if (bytes < 0 || (uint64_t)bytes > (uint64_t)(c->end - c->p))
                return fail(c, op, bat,
                            "truncated input: block of %" PRId64
                            " bytes runs past the end (%zu bytes left)",
                            bytes, (size_t)(c->end - c->p));
            if (!render) { /* the size lets a skip jump the whole block */
                c->p += bytes;
                continue;
            }
        }
        size_t left = (size_t)(c->end - c->p);
        if (min ? (uint64_t)count > left / min : count > ZERO_SIZE_ITEMS_MAX)
            return fail(c, op, at, "block of %" PRId64 " items cannot fit in the %zu bytes left",
                        count, left);
        for (int64_t i = 0; i < count; i++) {
            if (render && !first)
                eddy_buf_putc(&c->jb, ',');
            first = false;
            if (!arr) {
                const uint8_t *kp = NULL, *kat = c->p;
                size_t kn = 0;
                if (rd_blob(c, op, &kp, &kn, "map key"))
                    return -1;
                if (render) {
                    size_t bad = utf8_check(kp, kn);
                    if (bad != kn)
                        return fail(c, op, kat, "map key is not valid UTF-8 (byte %zu of it)",
                                    bad);
                    eddy__json_encode_str(&c->jb, (const char *)kp, kn);
                    eddy_buf_putc(&c->jb, ':');
                }
            }
            if (run(c, items))
                return -1;
        }
    }
    if (render)
        eddy_buf_putc(&c->jb, arr ? ']' : '}');
    return 0;
}

#define DST(c, op) ((op)->slot >= 0 ? (c)->vals + (op)->slot : &(c)->tmp)
#define RENDER(c, op, v)                                                                     \
    do {                                                                                     \
        if (eddy_unlikely((op)->slot < 0))                                                   \
            json_value((c), (v));                                                            \
    } while (0)

static int run(cur_t *c, const prog_t *pg) {
    if (!pg->n) /* an empty program (a null union branch) has no ops array */
        return 0;
    const op_t *op = pg->ops, *end = op + pg->n;
    for (; op < end; op++) {
        switch ((opcode_t)op->code) {
        case OP_LONG_COL: {
            eddy_value_t *v = c->vals + op->slot;
            int64_t x = 0;
            if (rd_long(c, op, &x, "long"))
                return -1;
            v->u.i = x;
            v->type = op->vt;
            break;
        }
        case OP_STR_COL: {
            const uint8_t *at = c->p, *p = NULL;
            size_t n = 0;
            if (rd_blob(c, op, &p, &n, "string"))
                return -1;
            size_t bad = utf8_check(p, n);
            if (eddy_unlikely(bad != n))
                return fail(c, op, at, "string is not valid UTF-8 (byte %zu of it)", bad);
            eddy_value_t *v = c->vals + op->slot;
            put_str(c, v, p, n);
            v->type = EDDY_TYPE_STRING;
            break;
        }
        case OP_INT64: {
            const uint8_t *at = c->p;
            int64_t x = 0;
            if (rd_long(c, op, &x, "long"))
                return -1;
            eddy_value_t *v = DST(c, op);
            if (eddy_likely(op->a == CONV_NONE)) {
                v->u.i = x;
                v->type = op->vt;
            } else if (convert(c, op, at, x, v)) {
                return -1;
            }
            RENDER(c, op, v);
            break;
        }
        case OP_INT32: {
            const uint8_t *at = c->p;
            int64_t x = 0;
            if (rd_int(c, op, &x, "int"))
                return -1;
            eddy_value_t *v = DST(c, op);
            if (eddy_likely(op->a == CONV_NONE)) {
                v->u.i = x;
                v->type = op->vt;
            } else if (convert(c, op, at, x, v)) {
                return -1;
            }
            RENDER(c, op, v);
            break;
        }
        case OP_F32: {
            if (eddy_unlikely(c->end - c->p < 4))
                return fail(c, op, c->p, "truncated input: float needs 4 bytes, %zu left",
                            (size_t)(c->end - c->p));
            float f;
            memcpy(&f, c->p, 4); /* little-endian hosts only (as Avro C) */
            c->p += 4;
            eddy_value_t *v = DST(c, op);
            v->u.d = f;
            v->type = EDDY_TYPE_DOUBLE;
            RENDER(c, op, v);
            break;
        }
        case OP_F64: {
            if (eddy_unlikely(c->end - c->p < 8))
                return fail(c, op, c->p, "truncated input: double needs 8 bytes, %zu left",
                            (size_t)(c->end - c->p));
            eddy_value_t *v = DST(c, op);
            memcpy(&v->u.d, c->p, 8);
            c->p += 8;
            v->type = EDDY_TYPE_DOUBLE;
            RENDER(c, op, v);
            break;
        }
        case OP_BOOL: {
            if (eddy_unlikely(c->p >= c->end))
                return fail(c, op, c->p, "truncated input: boolean needs 1 byte");
            if (eddy_unlikely(*c->p > 1))
                return fail(c, op, c->p, "bad boolean byte 0x%02x", *c->p);
            eddy_value_t *v = DST(c, op);
            v->u.i = *c->p++;
            v->type = EDDY_TYPE_BOOL;
            RENDER(c, op, v);
            break;
        }
        case OP_STR:
        case OP_BYTES: {
            const uint8_t *at = c->p, *p = NULL;
            size_t n = 0;
            bool str = op->code == OP_STR;
            if (rd_blob(c, op, &p, &n, str ? "string" : "bytes"))
                return -1;
            if (str) {
                size_t bad = utf8_check(p, n);
                if (eddy_unlikely(bad != n))
                    return fail(c, op, at, "string is not valid UTF-8 (byte %zu of it)", bad);
            }
            eddy_value_t *v = DST(c, op);
            put_str(c, v, p, n);
            v->type = op->vt;
            RENDER(c, op, v);
            break;
        }
        case OP_FIXED: {
            if (eddy_unlikely((uint64_t)(c->end - c->p) < (uint64_t)op->b))
                return fail(c, op, c->p,
                            "truncated input: fixed needs %" PRId64 " bytes, %zu left", op->b,
                            (size_t)(c->end - c->p));
            eddy_value_t *v = DST(c, op);
            put_str(c, v, c->p, (size_t)op->b);
            c->p += op->b;
            v->type = EDDY_TYPE_BYTES;
            RENDER(c, op, v);
            break;
        }
        case OP_ENUM: {
            const uint8_t *at = c->p;
            int64_t x = 0;
            if (rd_int(c, op, &x, "enum index"))
                return -1;
            if (eddy_unlikely(x < 0 || x >= op->a))
                return fail(c, op, at, "enum index %" PRId64 " out of range (%d symbols)", x,
                            op->a);
            const enum_map_t *m = (const enum_map_t *)op->p + x;
            if (eddy_unlikely(!m->s))
                return fail(c, op, at,
                            "writer symbol '%s' is not in the reader's enum, which has no "
                            "default",
                            m->w_name);
            eddy_value_t *v = DST(c, op);
            v->u.s = m->s;
            v->len = m->len;
            v->type = EDDY_TYPE_STRING;
            RENDER(c, op, v);
            break;
        }
        case OP_NULLS:
            if (op->slot < 0) {
                eddy_buf_put(&c->jb, "null", 4);
            } else {
                for (int i = op->slot; i < op->a; i++) {
                    c->vals[i].type = EDDY_TYPE_NULL;
                    c->vals[i].len = 0;
                    c->vals[i].u.i = 0;
                }
            }
            break;
        case OP_DEFAULT:
            c->vals[op->slot] = *(const eddy_value_t *)op->p;
            break;
        case OP_JRAW:
            eddy_buf_put(&c->jb, op->p, (size_t)op->b);
            break;
        case OP_UNION: {
            const uint8_t *at = c->p;
            int64_t x = 0;
            if (rd_long(c, op, &x, "union index"))
                return -1;
            if (eddy_unlikely(x < 0 || x >= op->a))
                return fail(c, op, at, "union branch index %" PRId64 " out of range (%d branches)",
                            x, op->a);
            if (run(c, ((prog_t *const *)op->p)[x]))
                return -1;
            break;
        }
        case OP_JSON: {
            c->jb.len = 0;
            if (run(c, op->p))
                return -1;
            eddy_value_t *v = c->vals + op->slot;
            v->u.s = eddy_arena_strndup(c->arena, c->jb.p ? c->jb.p : "", c->jb.len);
            v->len = (uint32_t)c->jb.len;
            v->type = EDDY_TYPE_STRING;
            break;
        }
        case OP_ARRAY:
        case OP_MAP:
            if (run_container(c, op))
                return -1;
            break;
        case OP_ERROR:
            return fail(c, op, c->p, "%s", (const char *)op->p);
        case OP_SKIP_VARINT: {
            const uint8_t *at = c->p;
            uint64_t u = 0;
            int rc = rd_varint(c, &u, op->a);
            if (rc)
                return varint_fail(c, op, at, rc, op->a == 5 ? "int" : "long");
            break;
        }
        case OP_SKIP_N:
            if (eddy_unlikely((uint64_t)(c->end - c->p) < (uint64_t)op->b))
                return fail(c, op, c->p, "truncated input: %" PRId64 " bytes needed, %zu left",
                            op->b, (size_t)(c->end - c->p));
            c->p += op->b;
            break;
        case OP_SKIP_BLOB: {
            const uint8_t *p = NULL;
            size_t n = 0;
            if (rd_blob(c, op, &p, &n, "string/bytes"))
                return -1;
            break;
        }
        }
    }
    return 0;
}

eddy_err_t eddy__avro_decode(const eddy_avro_plan_t *plan, const void *buf, size_t len,
                             eddy_arena_t *arena, eddy_value_t *vals, unsigned flags, char *reason,
                             size_t reason_size) {
    cur_t c = {.base = buf,
               .p = buf,
               .end = (const uint8_t *)buf + len,
               .vals = vals,
               .arena = arena,
               .flags = flags,
               .plan = plan,
               .reason = reason,
               .reason_size = reason_size};
    if (!buf)
        c.base = c.p = c.end = (const uint8_t *)"";
    int rc = run(&c, plan->root);
    if (c.jb.p)
        eddy_buf_free(&c.jb);
    if (rc)
        return EDDY_ERR_DECODE;
    if (c.p != c.end) {
        eddy__seterr(reason, reason_size,
                     "%s: %zu trailing bytes after the record at byte %zu (is the writer schema "
                     "the one the bytes were written with?)",
                     plan->paths[0], (size_t)(c.end - c.p), (size_t)(c.p - c.base));
        return EDDY_ERR_DECODE;
    }
    return EDDY_OK;
}

eddy_err_t eddy__avro_wire_split(const void *msg, size_t len, int32_t *schema_id,
                                 const void **body, size_t *body_len, char *reason,
                                 size_t reason_size) {
    const uint8_t *p = msg;
    if (len < 1 || !p) {
        eddy__seterr(reason, reason_size, "empty message: no Confluent wire-format header");
        return EDDY_ERR_DECODE;
    }
    if (p[0] != 0) {
        eddy__seterr(reason, reason_size,
                     "bad magic byte 0x%02x (expected 0x00: not Confluent wire format)", p[0]);
        return EDDY_ERR_DECODE;
    }
    if (len < 5) {
        eddy__seterr(reason, reason_size,
                     "message of %zu bytes is shorter than the 5-byte Confluent header", len);
        return EDDY_ERR_DECODE;
    }
    *schema_id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                           ((uint32_t)p[3] << 8) | p[4]);
    *body = p + 5;
    *body_len = len - 5;
    return EDDY_OK;
}

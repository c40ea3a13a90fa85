/*
 * Schemas declared in topology files, shared by every source that needs
 * one. Two spellings:
 *   schema: {user: string, amount: "double?", ts: timestamp}   ('?' = nullable)
 *   schema: [{name: user, type: string, nullable: false, pii: true}, ...]
 */
#include "cfg.h"
#include "plan.h"

static const char *const field_keys[] = {"name", "type", "nullable", "pii", NULL};

static eddy_err_t add_field(eddy_schema_t *s, const eddy_cnode_t *at, const char *name,
                            const char *type, bool nullable, bool pii, char *errstr,
                            size_t errstr_size) {
    char t[32];
    size_t n = strlen(type);
    if (n && n < sizeof(t) && type[n - 1] == '?') {
        memcpy(t, type, n - 1);
        t[n - 1] = 0;
        nullable = true;
        type = t;
    }
    int ty = eddy__type_parse(type);
    if (ty < 0 || ty == EDDY_TYPE_NULL)
        return eddy__cnode_err(at, errstr, errstr_size,
                               "field '%s': unknown type '%s' (expected boolean, int, long, "
                               "float, double, string, bytes or timestamp)",
                               name, type);
    int idx = eddy__schema_add(s, name, (eddy_type_t)ty);
    if (idx < 0)
        return eddy__cnode_err(at, errstr, errstr_size, "field '%s' is declared twice", name);
    s->fields[idx].nullable = nullable;
    s->fields[idx].pii = pii;
    return EDDY_OK;
}

eddy_schema_t *eddy__schema_from_cnode(const eddy_cnode_t *n, char *errstr, size_t errstr_size) {
    if (!n || (n->kind != EDDY_CNODE_MAP && n->kind != EDDY_CNODE_SEQ) || n->n == 0) {
        eddy__cnode_err(n, errstr, errstr_size,
                        "schema: expected a mapping of field -> type, e.g. "
                        "{user: string, amount: double}, or a list of {name, type}");
        return NULL;
    }
    eddy_schema_t *s = eddy__schema_new_empty();
    for (int i = 0; i < n->n; i++) {
        const eddy_cnode_t *it = n->items[i];
        eddy_err_t err;
        if (n->kind == EDDY_CNODE_MAP) {
            if (it->kind != EDDY_CNODE_SCALAR) {
                eddy__cnode_err(it, errstr, errstr_size, "field '%s': expected a type name",
                                n->keys[i]);
                goto fail;
            }
            err = add_field(s, it, n->keys[i], it->scalar, false, false, errstr, errstr_size);
        } else {
            const char *name = NULL, *type = NULL;
            bool nullable = false, pii = false;
            if (it->kind != EDDY_CNODE_MAP) {
                eddy__cnode_err(it, errstr, errstr_size,
                                "schema field: expected {name: ..., type: ...}");
                goto fail;
            }
            if ((err = eddy__cfg_check_keys(it, "schema field", field_keys, errstr,
                                            errstr_size)) ||
                (err = eddy__cfg_str(it, "name", true, &name, errstr, errstr_size)) ||
                (err = eddy__cfg_str(it, "type", true, &type, errstr, errstr_size)) ||
                (err = eddy__cfg_bool(it, "nullable", false, &nullable, errstr, errstr_size)) ||
                (err = eddy__cfg_bool(it, "pii", false, &pii, errstr, errstr_size)))
                goto fail;
            err = add_field(s, eddy__cnode_get(it, "type"), name, type, nullable, pii, errstr,
                            errstr_size);
        }
        if (err)
            goto fail;
    }
    return s;
fail:
    eddy__schema_unref(s);
    return NULL;
}

int eddy__schema_timestamp_field(const eddy_schema_t *s, const eddy_cnode_t *tn, const char *ts,
                                 const char *where, char *errstr, size_t errstr_size) {
    int idx = eddy_schema_field_index(s, ts);
    if (idx < 0) {
        eddy__cnode_err(tn, errstr, errstr_size, "timestamp: no field '%s' in the schema%s", ts,
                        where);
        return -1;
    }
    eddy_type_t t = s->fields[idx].type;
    if (t != EDDY_TYPE_TIMESTAMP && t != EDDY_TYPE_INT) {
        eddy__cnode_err(tn, errstr, errstr_size,
                        "timestamp: field '%s' is %s; it must be timestamp or int "
                        "(ms since the epoch)",
                        ts, eddy_type2str(t));
        return -1;
    }
    return idx;
}

/*
 * CEP pattern compiler: the `cep:` step's options -> cep_conf_t (cep.h).
 *
 *   - cep:
 *       by: card
 *       within: 10m
 *       after_match: skip_past_last_event     # or {skip_to_last: small}
 *       pattern:
 *         - {name: small, where: "amount < 10", times_or_more: 3, consecutive: true}
 *         - {name: big, followed_by: "amount > 500 * avg(small.amount)"}
 *       fields: {n: count(small), total: sum(small.amount), big: last(big.amount)}
 *       timeouts: alerts                      # sink for timed-out partial matches
 *
 * Aggregate references (`fn(stage.field)`, `count(stage)`) are replaced
 * in the expression text by virtual field names padded to the same length,
 * so the expression compiler's error columns still point into what the
 * user wrote. Every pattern the matcher could not run as written is a
 * config error at the offending node that says why.
 */
#include "cep.h"
#include "cfg.h"
#include "state/row.h"
#include "state/store.h"

#include <ctype.h>
#include <stdlib.h>

static const char *const fn_names[] = {"count", "sum", "avg", "min", "max", "first", "last",
                                       NULL};
static const char *const step_keys[] = {"by",       "pattern", "within", "after_match",
                                        "fields",   "timeouts", "store", "retention", NULL};
static const char *const stage_keys[] = {
    "name",          "where",    "next",          "followed_by",   "followed_by_any",
    "not_next",      "not_followed_by", "times",  "one_or_more",   "times_or_more",
    "optional",      "greedy",   "until",         "consecutive",   "allow_combinations",
    NULL};
static const char *const cont_keys[] = {"where",    "next",           "followed_by",
                                        "followed_by_any", "not_next", "not_followed_by", NULL};
static const char *const skip_names[] = {"no_skip", "skip_to_next", "skip_past_last_event", NULL};

void eddy__cep_free(void *conf) {
    cep_conf_t *c = conf;
    if (!c)
        return;
    for (int i = 0; i < c->nst; i++) {
        eddy_free(c->st[i].name);
        eddy__expr_destroy(c->st[i].cond);
        eddy__expr_destroy(c->st[i].until);
        eddy_free(c->st[i].refs);
    }
    eddy_free(c->st);
    eddy_free(c->acc);
    eddy_free(c->ref);
    eddy__aggspec_free(&c->by);
    for (int i = 0; i < c->nout; i++) {
        eddy__expr_destroy(c->out[i]);
        eddy_free(c->out_names[i]);
    }
    eddy_free(c->out);
    eddy_free(c->out_names);
    eddy_free(c->orefs);
    eddy__schema_unref(c->outs);
    eddy__schema_unref(c->touts);
    eddy__schema_unref(c->keys);
    eddy_free(c);
}

const eddy_cnode_t *eddy__cep_exchange_key(const eddy_cnode_t *step, bool *wanted) {
    *wanted = true;
    return eddy__cnode_get(step->n ? step->items[0] : NULL, "by");
}

static int stage_index(const cep_conf_t *c, const char *name, size_t len) {
    for (int i = 0; i < c->nst; i++)
        if (strlen(c->st[i].name) == len && !strncmp(c->st[i].name, name, len))
            return i;
    return -1;
}

/* Stage names for did-you-mean (NULL-terminated; caller frees the array). */
static const char **stage_names(const cep_conf_t *c) {
    const char **v = eddy_calloc((size_t)c->nst + 1, sizeof(char *));
    for (int i = 0; i < c->nst; i++)
        v[i] = c->st[i].name;
    return v;
}

static int add_acc(cep_conf_t *c, int stage, int field) {
    for (int i = 0; i < c->nacc; i++)
        if (c->acc[i].stage == stage && c->acc[i].field == field)
            return i;
    c->acc = eddy_realloc(c->acc, sizeof(*c->acc) * (size_t)(c->nacc + 1));
    c->acc[c->nacc] = (cep_acc_t){stage, field};
    return c->nacc++;
}

static int add_ref(cep_conf_t *c, cep_fn_t fn, int acc, eddy_type_t type) {
    for (int i = 0; i < c->nref; i++)
        if (c->ref[i].fn == fn && c->ref[i].acc == acc)
            return i;
    c->ref = eddy_realloc(c->ref, sizeof(*c->ref) * (size_t)(c->nref + 1));
    c->ref[c->nref] = (cep_ref_t){fn, acc, type};
    return c->nref++;
}

static bool ident_char(char ch) { return isalnum((unsigned char)ch) || ch == '_' || ch == '.'; }

/*
 * Replace every aggregate reference in src by its virtual field (padded
 * with spaces to the same length). upto: the last stage whose events the
 * expression may see (conditions: its own stage; fields: all).
 */
static eddy_err_t rewrite(cep_conf_t *c, const eddy_cnode_t *n, const eddy_schema_t *in,
                          int upto, const char *what, char **out, char *errstr, size_t en) {
    const char *s = n->scalar;
    size_t len = strlen(s);
    char *r = eddy_strdup(s);
    int q = n->quoted ? 1 : 0;
    size_t i = 0;
    while (i < len) {
        char ch = s[i];
        if (ch == '\'' || ch == '"' || ch == '`') {
            for (i++; i < len && s[i] != ch; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (!(isalpha((unsigned char)ch) || ch == '_') || (i > 0 && ident_char(s[i - 1]))) {
            i++;
            continue;
        }
        size_t st = i;
        while (i < len && ident_char(s[i]))
            i++;
        size_t fnlen = i - st;
        int fn = -1;
        for (int k = 0; fn_names[k]; k++)
            if (strlen(fn_names[k]) == fnlen && !strncasecmp(fn_names[k], s + st, fnlen))
                fn = k;
        size_t j = i;
        while (j < len && isspace((unsigned char)s[j]))
            j++;
        if (fn < 0 || j >= len || s[j] != '(')
            continue;
        j++;
        while (j < len && isspace((unsigned char)s[j]))
            j++;
        size_t as = j;
        while (j < len && ident_char(s[j]))
            j++;
        size_t ae = j;
        while (j < len && isspace((unsigned char)s[j]))
            j++;
        if (ae == as || j >= len || s[j] != ')')
            continue; /* not ours (e.g. a function of the language) */
        const char *arg = s + as;
        const char *dot = memchr(arg, '.', ae - as);
        size_t slen = dot ? (size_t)(dot - arg) : ae - as;
        int stg = stage_index(c, arg, slen);
        if (stg < 0) {
            char nm[128];
            snprintf(nm, sizeof(nm), "%.*s", (int)slen, arg);
            const char **names = stage_names(c);
            const char *sg = eddy__cfg_suggest(nm, names);
            eddy__cnode_err_at(n, (int)as + q, errstr, en,
                               "%s: %s(%.*s): unknown stage '%s'%s%s%s; %s() takes "
                               "stage.field (count also a stage alone)",
                               what, fn_names[fn], (int)(ae - as), arg, nm,
                               sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "",
                               fn_names[fn]);
            eddy_free(names);
            eddy_free(r);
            return EDDY_ERR_CONFIG;
        }
        if (stg > upto) {
            eddy_free(r);
            return eddy__cnode_err_at(n, (int)as + q, errstr, en,
                                      "%s: stage '%s' comes after '%s': its events are not "
                                      "known when this condition is evaluated",
                                      what, c->st[stg].name, c->st[upto].name);
        }
        if (c->st[stg].kind != CEP_EVENT) {
            eddy_free(r);
            return eddy__cnode_err_at(n, (int)as + q, errstr, en,
                                      "%s: stage '%s' is a negation: it takes no events to "
                                      "aggregate",
                                      what, c->st[stg].name);
        }
        int field = -1;
        eddy_type_t type = EDDY_TYPE_INT;
        if (dot) {
            char fname[256];
            snprintf(fname, sizeof(fname), "%.*s", (int)(ae - as - slen - 1), dot + 1);
            for (int f = 0; f < in->nfields && f < c->nin; f++)
                if (!strcmp(in->fields[f].name, fname))
                    field = f;
            if (field < 0) {
                const char **names = eddy_calloc((size_t)c->nin + 1, sizeof(char *));
                for (int f = 0; f < c->nin; f++)
                    names[f] = in->fields[f].name;
                const char *sg = eddy__cfg_suggest(fname, names);
                eddy__cnode_err_at(n, (int)as + q + (int)slen + 1, errstr, en,
                                   "%s: unknown field '%s'%s%s%s", what, fname,
                                   sg ? " (did you mean '" : "", sg ? sg : "",
                                   sg ? "'?)" : "");
                eddy_free(names);
                eddy_free(r);
                return EDDY_ERR_CONFIG;
            }
            type = in->fields[field].type;
        } else if (fn != CEP_F_COUNT) {
            eddy_free(r);
            return eddy__cnode_err_at(n, (int)as + q, errstr, en,
                                      "%s: %s(%s) needs a field: %s(%s.FIELD)", what,
                                      fn_names[fn], c->st[stg].name, fn_names[fn],
                                      c->st[stg].name);
        }
        bool numeric = type == EDDY_TYPE_INT || type == EDDY_TYPE_DOUBLE;
        if ((fn == CEP_F_SUM || fn == CEP_F_AVG) && !numeric) {
            eddy_free(r);
            return eddy__cnode_err_at(n, (int)as + q, errstr, en,
                                      "%s: %s() needs a number; '%.*s' is not one", what,
                                      fn_names[fn], (int)(ae - as), arg);
        }
        eddy_type_t rt = fn == CEP_F_COUNT ? EDDY_TYPE_INT
                         : fn == CEP_F_AVG ? EDDY_TYPE_DOUBLE
                                           : type;
        int ref = add_ref(c, (cep_fn_t)fn, add_acc(c, stg, fn == CEP_F_COUNT ? -1 : field), rt);
        char vname[32];
        int vl = snprintf(vname, sizeof(vname), "_cep%d", ref);
        size_t span = j + 1 - st;
        if ((size_t)vl > span) {
            eddy_free(r);
            return eddy__cnode_err_at(n, (int)st + q, errstr, en, "%s: too many references",
                                      what);
        }
        memset(r + st, ' ', span);
        memcpy(r + st, vname, (size_t)vl);
        i = j + 1;
    }
    *out = r;
    return EDDY_OK;
}

/* The schema expressions are compiled against: input + every ref so far. */
static eddy_schema_t *expr_schema(const cep_conf_t *c, const eddy_schema_t *in) {
    eddy_schema_t *s = eddy__schema_new_empty();
    for (int f = 0; f < c->nin; f++)
        eddy__schema_add(s, in->fields[f].name, in->fields[f].type);
    for (int i = 0; i < c->nref; i++) {
        char vname[32];
        snprintf(vname, sizeof(vname), "_cep%d", i);
        eddy__schema_add(s, vname, c->ref[i].type);
    }
    return s;
}

/* Compile an expression node with references; appends the refs it reads
 * to *refs. */
static eddy_expr_t *compile_x(cep_conf_t *c, const eddy_cnode_t *n, const eddy_schema_t *in,
                              int upto, const char *what, int **refs, int *nrefs,
                              char *errstr, size_t en) {
    if (!n || n->kind != EDDY_CNODE_SCALAR) {
        eddy__cnode_err(n, errstr, en, "%s: expected an expression", what);
        return NULL;
    }
    char *src = NULL;
    if (rewrite(c, n, in, upto, what, &src, errstr, en))
        return NULL;
    eddy_schema_t *xs = expr_schema(c, in);
    char msg[400];
    int col = 0;
    eddy_expr_t *e = eddy__expr_compile(src, xs, msg, sizeof(msg), &col);
    eddy__schema_unref(xs);
    eddy_free(src);
    if (!e) {
        eddy__cnode_err_at(n, col + (n->quoted ? 1 : 0), errstr, en, "%s: %s", what, msg);
        return NULL;
    }
    int f[256];
    int nf = eddy__expr_fields(e, f, 256);
    for (int i = 0; i < nf && i < 256; i++)
        if (f[i] >= c->nin) {
            bool have = false;
            for (int k = 0; k < *nrefs; k++)
                have |= (*refs)[k] == f[i] - c->nin;
            if (!have) {
                *refs = eddy_realloc(*refs, sizeof(int) * (size_t)(*nrefs + 1));
                (*refs)[(*nrefs)++] = f[i] - c->nin;
            }
        }
    return e;
}

static eddy_err_t want_bool(const eddy_expr_t *e, const eddy_cnode_t *n, const char *what,
                            char *errstr, size_t en) {
    eddy_type_t t = eddy__expr_type(e);
    if (t != EDDY_TYPE_BOOL && t != EDDY_TYPE_NULL)
        return eddy__cnode_err(n, errstr, en, "%s: the condition must be true or false",
                               what);
    return EDDY_OK;
}

/* times: n or "n..m" */
static eddy_err_t parse_times(const eddy_cnode_t *t, int *mn, int *mx, char *errstr,
                              size_t en) {
    const char *s = t->kind == EDDY_CNODE_SCALAR ? t->scalar : NULL;
    const char *dd = s ? strstr(s, "..") : NULL;
    char *end;
    if (s && !dd) {
        int64_t v;
        eddy_err_t err = eddy__cfg_node_int(t, "times", 1, 100000, &v, errstr, en);
        if (err)
            return err;
        *mn = *mx = (int)v;
        return EDDY_OK;
    }
    if (s && dd) {
        long a = strtol(s, &end, 10);
        if (end == dd) {
            long b = strtol(dd + 2, &end, 10);
            if (*end == 0 && dd[2] && a >= 1 && b >= a && b <= 100000) {
                *mn = (int)a;
                *mx = (int)b;
                return EDDY_OK;
            }
        }
    }
    return eddy__cnode_err(t, errstr, en,
                           "times: expected a count like 3 or a range like 2..4 (1 <= n <= m)");
}

static eddy_err_t parse_stage(cep_conf_t *c, int idx, const eddy_cnode_t *m,
                              const eddy_schema_t *in, char *errstr, size_t en) {
    eddy_err_t err;
    cep_stage_t *st = &c->st[idx];
    const char *name = st->name;
    st->min = st->max = 1;
    int which = -1;
    for (int k = 0; cont_keys[k]; k++)
        if (eddy__cnode_get(m, cont_keys[k])) {
            if (which >= 0)
                return eddy__cnode_err(eddy__cnode_get(m, cont_keys[k]), errstr, en,
                                       "stage '%s' has both '%s' and '%s': give one", name,
                                       cont_keys[which], cont_keys[k]);
            which = k;
        }
    if (which < 0)
        return eddy__cnode_err(m, errstr, en,
                               "stage '%s' has no condition: give %s", name,
                               idx ? "next, followed_by, followed_by_any, not_next or "
                                     "not_followed_by (how it follows the stage before)"
                                   : "where");
    if (idx == 0 && which != 0)
        return eddy__cnode_err(eddy__cnode_get(m, cont_keys[which]), errstr, en,
                               "the first stage '%s' follows nothing: use where: instead of "
                               "%s:%s",
                               name, cont_keys[which],
                               which >= 4 ? " (a pattern cannot start with a negation)" : "");
    if (idx > 0 && which == 0)
        return eddy__cnode_err(eddy__cnode_get(m, "where"), errstr, en,
                               "stage '%s': say how it follows the stage before: next, "
                               "followed_by, followed_by_any, not_next or not_followed_by",
                               name);
    static const cep_contig_t contig_of[] = {CEP_STRICT, CEP_STRICT, CEP_RELAXED,
                                             CEP_ANY,    CEP_STRICT, CEP_RELAXED};
    st->contig = contig_of[which];
    st->kind = which == 4 ? CEP_NOT_NEXT : which == 5 ? CEP_NOT_FOLLOWED_BY : CEP_EVENT;
    st->inner = CEP_RELAXED;
    const eddy_cnode_t *condn = eddy__cnode_get(m, cont_keys[which]);
    /* quantifiers */
    const eddy_cnode_t *times = eddy__cnode_get(m, "times");
    const eddy_cnode_t *oom = eddy__cnode_get(m, "one_or_more");
    const eddy_cnode_t *tom = eddy__cnode_get(m, "times_or_more");
    int nq = !!times + !!oom + !!tom;
    if (nq > 1)
        return eddy__cnode_err(m, errstr, en,
                               "stage '%s': give one of times, one_or_more, times_or_more",
                               name);
    bool b = false;
    if (times && (err = parse_times(times, &st->min, &st->max, errstr, en)))
        return err;
    if (oom) {
        if ((err = eddy__cfg_bool(m, "one_or_more", false, &b, errstr, en)))
            return err;
        if (b)
            st->max = CEP_INF;
    }
    if (tom) {
        int64_t v;
        if ((err = eddy__cfg_int(m, "times_or_more", true, 1, 100000, &v, errstr, en)))
            return err;
        st->min = (int)v;
        st->max = CEP_INF;
    }
    bool opt = false, greedy = false, cons = false, comb = false;
    if ((err = eddy__cfg_bool(m, "optional", false, &opt, errstr, en)) ||
        (err = eddy__cfg_bool(m, "greedy", false, &greedy, errstr, en)) ||
        (err = eddy__cfg_bool(m, "consecutive", false, &cons, errstr, en)) ||
        (err = eddy__cfg_bool(m, "allow_combinations", false, &comb, errstr, en)))
        return err;
    if (st->kind != CEP_EVENT) {
        static const char *const q[] = {"times",    "one_or_more", "times_or_more", "optional",
                                        "greedy",   "until",       "consecutive",
                                        "allow_combinations", NULL};
        for (int k = 0; q[k]; k++)
            if (eddy__cnode_get(m, q[k]))
                return eddy__cnode_err(eddy__cnode_get(m, q[k]), errstr, en,
                                       "stage '%s' is a negation (%s): it takes no events, so "
                                       "'%s' has no meaning",
                                       name, cont_keys[which], q[k]);
    }
    if (opt)
        st->min = 0;
    st->greedy = greedy;
    bool loop = st->max > 1;
    if (greedy && !loop)
        return eddy__cnode_err(eddy__cnode_get(m, "greedy"), errstr, en,
                               "stage '%s': greedy applies to a stage that takes several "
                               "events (times: n..m, one_or_more, times_or_more)",
                               name);
    if ((cons || comb) && !loop)
        return eddy__cnode_err(eddy__cnode_get(m, cons ? "consecutive" : "allow_combinations"),
                               errstr, en,
                               "stage '%s': %s applies to a stage that takes several events",
                               name, cons ? "consecutive" : "allow_combinations");
    if (cons && comb)
        return eddy__cnode_err(eddy__cnode_get(m, "allow_combinations"), errstr, en,
                               "stage '%s': consecutive and allow_combinations exclude each "
                               "other",
                               name);
    st->inner = cons ? CEP_STRICT : comb ? CEP_ANY : CEP_RELAXED;
    char what[200];
    snprintf(what, sizeof(what), "stage '%s'", name);
    /* the condition may read aggregates of this stage and earlier ones (a
     * negation: earlier ones only) */
    int upto = st->kind == CEP_EVENT ? idx : idx - 1;
    st->cond = compile_x(c, condn, in, upto, what, &st->refs, &st->nrefs, errstr, en);
    return st->cond ? want_bool(st->cond, condn, what, errstr, en) : EDDY_ERR_CONFIG;
}

/* The whole-pattern rules: what cannot be matched as written. */
static eddy_err_t check_pattern(cep_conf_t *c, const eddy_cnode_t *pat, char *errstr,
                                size_t en) {
    int last = c->nst - 1;
    const eddy_cnode_t *const *it = (const eddy_cnode_t *const *)pat->items;
    bool has_event = false;
    for (int i = 0; i < c->nst; i++) {
        cep_stage_t *s = &c->st[i];
        has_event |= s->kind == CEP_EVENT && s->min > 0;
        if (s->kind != CEP_EVENT && i > 0 && c->st[i - 1].kind != CEP_EVENT)
            return eddy__cnode_err(it[i], errstr, en,
                                   "stage '%s': two negations in a row; put both conditions "
                                   "into one (not_next: \"a or b\")",
                                   s->name);
        if (s->kind != CEP_EVENT && i < last && c->st[i + 1].min == 0)
            return eddy__cnode_err(it[i + 1], errstr, en,
                                   "stage '%s' follows the negation '%s' and is optional: the "
                                   "negation needs an event stage after it to end its gap",
                                   c->st[i + 1].name, s->name);
    }
    if (!has_event)
        return eddy__cnode_err(pat, errstr, en,
                               "pattern: every stage is optional or a negation, so it would "
                               "match nothing");
    cep_stage_t *l = &c->st[last];
    if (l->kind == CEP_NOT_FOLLOWED_BY && !c->within)
        return eddy__cnode_err(it[last], errstr, en,
                               "the pattern ends with not_followed_by '%s' but has no within: "
                               "nothing could ever confirm that the event did not come; add "
                               "within: (e.g. within: 10m)",
                               l->name);
    if (l->kind == CEP_EVENT && l->min == 0)
        return eddy__cnode_err(it[last], errstr, en,
                               "the last stage '%s' is optional: a match would be complete "
                               "before it, so it could never take part; make it required",
                               l->name);
    if (l->kind == CEP_EVENT && l->greedy)
        return eddy__cnode_err(eddy__cnode_get(it[last], "greedy"), errstr, en,
                               "the last stage '%s' is greedy: a match ends with each of its "
                               "events, so there is nothing after it to be greedy against",
                               l->name);
    for (int i = 0; i < c->nst; i++)
        if (c->st[i].until && c->st[i].max != CEP_INF)
            return eddy__cnode_err(eddy__cnode_get(it[i], "until"), errstr, en,
                                   "stage '%s': until applies to one_or_more and "
                                   "times_or_more stages",
                                   c->st[i].name);
    return EDDY_OK;
}

static eddy_err_t parse_skip(cep_conf_t *c, const eddy_cnode_t *m, char *errstr, size_t en) {
    const eddy_cnode_t *n = eddy__cnode_get(m, "after_match");
    c->skip = CEP_NO_SKIP;
    c->skip_stage = -1;
    if (!n || eddy__cfg_is_null(n))
        return EDDY_OK;
    if (n->kind == EDDY_CNODE_SCALAR) {
        int k;
        eddy_err_t err = eddy__cfg_node_enum(n, "after_match", skip_names, &k, errstr, en);
        if (err)
            return err;
        c->skip = (cep_skip_t)k;
        return EDDY_OK;
    }
    if (n->kind != EDDY_CNODE_MAP || n->n != 1 ||
        (strcmp(n->keys[0], "skip_to_first") && strcmp(n->keys[0], "skip_to_last")))
        return eddy__cnode_err(n, errstr, en,
                               "after_match: expected no_skip, skip_to_next, "
                               "skip_past_last_event, {skip_to_first: STAGE} or "
                               "{skip_to_last: STAGE}");
    c->skip = !strcmp(n->keys[0], "skip_to_first") ? CEP_SKIP_TO_FIRST : CEP_SKIP_TO_LAST;
    const eddy_cnode_t *v = n->items[0];
    const char *nm = v->kind == EDDY_CNODE_SCALAR ? v->scalar : "";
    c->skip_stage = stage_index(c, nm, strlen(nm));
    if (c->skip_stage < 0) {
        const char **names = stage_names(c);
        const char *sg = eddy__cfg_suggest(nm, names);
        eddy__cnode_err(v, errstr, en, "after_match: unknown stage '%s'%s%s%s", nm,
                        sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "");
        eddy_free(names);
        return EDDY_ERR_CONFIG;
    }
    if (c->st[c->skip_stage].kind != CEP_EVENT)
        return eddy__cnode_err(v, errstr, en,
                               "after_match: stage '%s' is a negation and takes no events to "
                               "skip to",
                               nm);
    return EDDY_OK;
}

static eddy_err_t decode_match(const eddy_store_def_t *def, const char *v, size_t vlen,
                               eddy_arena_t *a, eddy_value_t *out) {
    (void)a;
    const cep_conf_t *c = def->owner;
    return eddy__row_decode(v, vlen, c->outs->nfields, out);
}

eddy_err_t eddy__cep_compile(eddy_compile_ctx_t *cc, char *errstr, size_t en) {
    const eddy_cnode_t *m = cc->arg;
    eddy_err_t err;
    if (cc->step->n > 1)
        return eddy__cnode_err(cc->step->key_nodes[1], errstr, en,
                               "unexpected key '%s' in a cep step", cc->step->keys[1]);
    if (!m || m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m ? m : cc->step, errstr, en,
                               "cep: expected {by: ..., pattern: [...], within: ...}");
    if ((err = eddy__cfg_check_keys(m, "cep", step_keys, errstr, en)))
        return err;
    cep_conf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    c->timeouts_node = -1;
    c->nin = cc->in->nfields;
    if ((err = eddy__cfg_duration(m, "within", false, &c->within, errstr, en)))
        return err;
    if (eddy__cnode_get(m, "within") && c->within <= 0)
        return eddy__cnode_err(eddy__cnode_get(m, "within"), errstr, en,
                               "within: must be longer than 0");
    const eddy_cnode_t *pat = eddy__cnode_get(m, "pattern");
    if (!pat || pat->kind != EDDY_CNODE_SEQ || pat->n == 0)
        return eddy__cnode_err(pat ? pat : m, errstr, en,
                               "cep: 'pattern' must be a list of stages, e.g. [{name: a, "
                               "where: \"x > 1\"}, {name: b, followed_by: \"x < 0\"}]");
    c->st = eddy_calloc((size_t)pat->n, sizeof(*c->st));
    /* names first: a condition may name a later stage (an error that
     * should say so, not "unknown stage") */
    for (int i = 0; i < pat->n; i++) {
        const eddy_cnode_t *sm = pat->items[i];
        const char *name = NULL;
        if (sm->kind != EDDY_CNODE_MAP)
            return eddy__cnode_err(sm, errstr, en,
                                   "pattern: a stage is a mapping like {name: a, where: \"x > "
                                   "1\"}");
        if ((err = eddy__cfg_check_keys(sm, "stage", stage_keys, errstr, en)) ||
            (err = eddy__cfg_str(sm, "name", true, &name, errstr, en)))
            return err;
        if (!*name || stage_index(c, name, strlen(name)) >= 0)
            return eddy__cnode_err(eddy__cnode_get(sm, "name"), errstr, en,
                                   *name ? "stage name '%s' is used twice"
                                         : "stage name '%s' is empty",
                                   name);
        c->st[i].name = eddy_strdup(name);
        c->nst = i + 1;
    }
    for (int i = 0; i < pat->n; i++) {
        if ((err = parse_stage(c, i, pat->items[i], cc->in, errstr, en)))
            return err;
        const eddy_cnode_t *un = eddy__cnode_get(pat->items[i], "until");
        if (un) {
            char what[200];
            snprintf(what, sizeof(what), "stage '%s': until", c->st[i].name);
            c->st[i].until = compile_x(c, un, cc->in, i, what, &c->st[i].refs,
                                       &c->st[i].nrefs, errstr, en);
            if (!c->st[i].until || (err = want_bool(c->st[i].until, un, what, errstr, en)))
                return EDDY_ERR_CONFIG;
        }
    }
    if ((err = check_pattern(c, pat, errstr, en)) || (err = parse_skip(c, m, errstr, en)))
        return err;
    /* output: by fields, match_start, match_end, fields */
    c->outs = eddy__schema_new_empty();
    c->keys = eddy__schema_new_empty();
    if ((err = eddy__aggspec_by(&c->by, eddy__cnode_get(m, "by"), cc->in, c->outs, c->keys,
                                errstr, en)))
        return err;
    eddy__schema_add(c->outs, "match_start", EDDY_TYPE_TIMESTAMP);
    eddy__schema_add(c->outs, "match_end", EDDY_TYPE_TIMESTAMP);
    const eddy_cnode_t *fields = eddy__cnode_get(m, "fields");
    if (fields && (fields->kind != EDDY_CNODE_MAP))
        return eddy__cnode_err(fields, errstr, en,
                               "fields: expected {name: expression}, e.g. {n: count(small)}");
    if (fields) {
        c->out = eddy_calloc((size_t)fields->n + 1, sizeof(*c->out));
        c->out_names = eddy_calloc((size_t)fields->n + 1, sizeof(char *));
        for (int i = 0; i < fields->n; i++) {
            char what[200];
            snprintf(what, sizeof(what), "fields.%s", fields->keys[i]);
            c->out[i] = compile_x(c, fields->items[i], cc->in, c->nst - 1, what, &c->orefs,
                                  &c->norefs, errstr, en);
            if (!c->out[i])
                return EDDY_ERR_CONFIG;
            c->out_names[i] = eddy_strdup(fields->keys[i]);
            c->nout++;
            if (eddy__schema_add(c->outs, fields->keys[i], eddy__expr_type(c->out[i])) < 0)
                return eddy__cnode_err(fields->key_nodes[i], errstr, en,
                                       "fields: '%s' is already an output field (the by "
                                       "fields, match_start and match_end come first)",
                                       fields->keys[i]);
        }
    }
    c->touts = eddy__schema_new_empty();
    for (int i = 0; i < c->outs->nfields; i++)
        eddy__schema_add(c->touts, c->outs->fields[i].name, c->outs->fields[i].type);
    eddy__schema_add(c->touts, "waiting_for", EDDY_TYPE_STRING);
    const char *tname = NULL;
    if ((err = eddy__cfg_str(m, "timeouts", false, &tname, errstr, en)))
        return err;
    if (tname) {
        char nm[300];
        snprintf(nm, sizeof(nm), "sink:%s", tname);
        for (int i = 0; i < cc->plan->nnodes; i++)
            if (cc->plan->nodes[i].ops->is_sink && !strcmp(cc->plan->nodes[i].name, nm))
                c->timeouts_node = i;
        if (c->timeouts_node < 0) { /* a stream for other pipelines (compile.c) */
            cc->side_at = eddy__cnode_get(m, "timeouts");
            cc->side_out = eddy__schema_ref(c->touts);
            cc->side_node = &c->timeouts_node;
        }
        if (!c->within)
            return eddy__cnode_err(eddy__cnode_get(m, "timeouts"), errstr, en,
                                   "timeouts: without within a partial match never times out");
    }
    /* stores: per key state (internal kv) and the matches (queryable log) */
    const char *store = NULL;
    int64_t retention = 86400000;
    if ((err = eddy__cfg_str(m, "store", false, &store, errstr, en)) ||
        (err = eddy__cfg_duration(m, "retention", false, &retention, errstr, en)))
        return err;
    char *sname = store ? eddy_strdup(store)
                        : eddy_asprintf("%s", cc->pipeline ? cc->pipeline : "cep");
    char *kname = eddy_asprintf("%s.partial", sname);
    if (eddy__plan_find_store(cc->plan, sname) || eddy__plan_find_store(cc->plan, kname)) {
        err = eddy__cnode_err(store ? eddy__cnode_get(m, "store") : m, errstr, en,
                              "a store named '%s' already exists; name this one with 'store:'",
                              sname);
        eddy_free(sname);
        eddy_free(kname);
        return err;
    }
    eddy_store_def_t *ms = eddy_calloc(1, sizeof(*ms));
    ms->name = sname;
    ms->kind = EDDY_STORE_LOG;
    ms->retention_ms = retention;
    ms->segment_ms = retention > 0 ? retention / 2 + 1 : 86400000;
    ms->key_schema = eddy__schema_ref(c->keys);
    ms->value_schema = eddy__schema_ref(c->outs);
    ms->queryable = true;
    ms->decode_value = decode_match;
    ms->owner = c;
    c->match_store = eddy__plan_add_store((eddy_plan_t *)cc->plan, ms);
    eddy_store_def_t *ks = eddy_calloc(1, sizeof(*ks));
    ks->name = kname;
    ks->kind = EDDY_STORE_KV;
    /* queryable as {key fields} -> {partial_matches, buffered} per key */
    ks->key_schema = eddy__schema_ref(c->keys);
    ks->value_schema = eddy__schema_new_empty();
    eddy__schema_add(ks->value_schema, "partial_matches", EDDY_TYPE_INT);
    eddy__schema_add(ks->value_schema, "buffered", EDDY_TYPE_INT);
    ks->queryable = true;
    ks->decode_value = eddy__cep_decode_partial;
    ks->owner = c;
    c->state_store = eddy__plan_add_store((eddy_plan_t *)cc->plan, ks);
    cc->out = eddy__schema_ref(c->outs);
    cc->label = eddy_asprintf("cep %d stages into store %s", c->nst, sname);
    return EDDY_OK;
}

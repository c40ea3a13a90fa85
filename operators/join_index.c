/*
 * In-memory index of an interval join side (see join_index.h).
 */
#include "join_index.h"

static jix_key_t **slot(const jix_t *ix, uint64_t h) { return &ix->b[h & (ix->nb - 1)]; }

jix_key_t *eddy__jix_find(const jix_t *ix, const char *key, uint32_t klen) {
    if (!ix->nb)
        return NULL;
    uint64_t h = eddy__hash64(key, klen);
    for (jix_key_t *k = *slot(ix, h); k; k = k->next)
        if (k->h == h && k->klen == klen && !memcmp(k->key, key, klen))
            return k;
    return NULL;
}

static void grow(jix_t *ix) {
    size_t nb = ix->nb ? 2 * ix->nb : 1024;
    jix_key_t **b = eddy_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < ix->nb; i++)
        for (jix_key_t *k = ix->b[i], *next; k; k = next) {
            next = k->next;
            k->next = b[k->h & (nb - 1)];
            b[k->h & (nb - 1)] = k;
        }
    eddy_free(ix->b);
    ix->b = b;
    ix->nb = nb;
}

static bool before(const jix_ent_t *a, int64_t ts, int64_t seq) {
    return a->ts < ts || (a->ts == ts && a->seq < seq);
}

void eddy__jix_add(jix_t *ix, const char *key, uint32_t klen, int64_t ts, int64_t seq,
                   int64_t end) {
    jix_key_t *k = eddy__jix_find(ix, key, klen);
    if (!k) {
        if (ix->nkeys >= ix->nb)
            grow(ix);
        uint64_t h = eddy__hash64(key, klen);
        k = eddy_malloc(sizeof(*k) + klen);
        memset(k, 0, sizeof(*k));
        k->h = h;
        k->klen = klen;
        memcpy(k->key, key, klen);
        jix_key_t **s = slot(ix, h);
        k->next = *s;
        *s = k;
        ix->nkeys++;
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 2;
        k->e = eddy_realloc(k->e, k->cap * sizeof(jix_ent_t));
    }
    /* mostly in order: insert from the back */
    uint32_t i = k->n;
    while (i > 0 && !before(&k->e[i - 1], ts, seq))
        i--;
    memmove(&k->e[i + 1], &k->e[i], (k->n - i) * sizeof(jix_ent_t));
    k->e[i] = (jix_ent_t){ts, seq, end};
    k->n++;
    ix->nents++;
    ix->added++;
}

uint32_t eddy__jix_lower(const jix_key_t *k, int64_t ts) {
    uint32_t lo = 0, hi = k->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (k->e[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void eddy__jix_sweep(jix_t *ix, int64_t below, bool force) {
    if (!force && ix->added < (ix->kept > 4096 ? ix->kept : 4096))
        return;
    for (size_t i = 0; i < ix->nb; i++) {
        jix_key_t **pp = &ix->b[i];
        while (*pp) {
            jix_key_t *k = *pp;
            uint32_t w = 0;
            for (uint32_t r = 0; r < k->n; r++)
                if (k->e[r].end >= below)
                    k->e[w++] = k->e[r];
            ix->nents -= k->n - w;
            k->n = w;
            if (w) {
                if (w < k->cap / 4) {
                    k->cap = w;
                    k->e = eddy_realloc(k->e, w * sizeof(jix_ent_t));
                }
                pp = &k->next;
                continue;
            }
            *pp = k->next;
            eddy_free(k->e);
            eddy_free(k);
            ix->nkeys--;
        }
    }
    ix->added = 0;
    ix->kept = ix->nents;
}

void eddy__jix_free(jix_t *ix) {
    for (size_t i = 0; i < ix->nb; i++)
        for (jix_key_t *k = ix->b[i], *next; k; k = next) {
            next = k->next;
            eddy_free(k->e);
            eddy_free(k);
        }
    eddy_free(ix->b);
    memset(ix, 0, sizeof(*ix));
}

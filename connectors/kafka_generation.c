/*
 * The consumer group generation of a consumer (kafka_generation.h).
 *
 * librdkafka 2.0 has no getter for it. The consumer group metadata it
 * hands out for transactions holds it, and serializes to a format that
 * is private but fixed within one process (rdkafka.h: "should only be
 * used in the same process runtime"). Two made-up metadata objects with
 * this member's group and member ids and two known generations serialize
 * to the same bytes except the generation's: that shows where the field
 * is and its byte order, and the real metadata is read there. Whatever
 * does not fit that picture (other fields differ, lengths differ, the
 * field is not 4 bytes) gives -1, never a wrong number.
 */
#include "connectors/kafka_generation.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static bool serialize(const rd_kafka_consumer_group_metadata_t *md, void **buf, size_t *len) {
    if (!md)
        return false;
    rd_kafka_error_t *e = rd_kafka_consumer_group_metadata_write(md, buf, len);
    if (e) {
        rd_kafka_error_destroy(e);
        *buf = NULL;
        return false;
    }
    return true;
}

/* The generation in r, given probes a and b (same length n) made with
 * generations 0x01020304 and 0x05060708; -1 when they do not fit. */
static int64_t locate(const unsigned char *r, const unsigned char *a, const unsigned char *b,
                      size_t n) {
    size_t at = n;
    for (size_t i = 0; i < n && at == n; i++)
        if (a[i] != b[i])
            at = i;
    if (at + 4 > n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bool field = i >= at && i < at + 4;
        if (field ? a[i] == b[i] : a[i] != b[i] || r[i] != a[i])
            return -1;
    }
    const unsigned char big[4] = {1, 2, 3, 4}, little[4] = {4, 3, 2, 1};
    uint32_t v = 0;
    if (!memcmp(a + at, big, 4))
        v = (uint32_t)r[at] << 24 | (uint32_t)r[at + 1] << 16 | (uint32_t)r[at + 2] << 8 |
            r[at + 3];
    else if (!memcmp(a + at, little, 4))
        v = (uint32_t)r[at + 3] << 24 | (uint32_t)r[at + 2] << 16 | (uint32_t)r[at + 1] << 8 |
            r[at];
    else
        return -1;
    int32_t g = (int32_t)v;
    return g >= 0 ? g : -1;
}

int64_t eddy__kafka_group_generation(rd_kafka_t *rk, const char *group_id) {
    if (!rk || !group_id)
        return -1;
    char *member = rd_kafka_memberid(rk);
    if (!member || !*member) {
        if (member)
            rd_kafka_mem_free(rk, member);
        return -1;
    }
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(rk);
    rd_kafka_consumer_group_metadata_t *pa =
        rd_kafka_consumer_group_metadata_new_with_genid(group_id, 0x01020304, member, NULL);
    rd_kafka_consumer_group_metadata_t *pb =
        rd_kafka_consumer_group_metadata_new_with_genid(group_id, 0x05060708, member, NULL);
    void *r = NULL, *a = NULL, *b = NULL;
    size_t rl = 0, al = 0, bl = 0;
    int64_t gen = -1;
    if (serialize(md, &r, &rl) && serialize(pa, &a, &al) && serialize(pb, &b, &bl) && rl == al &&
        al == bl)
        gen = locate(r, a, b, rl);
    /* buffers from _write are the library's (rd_kafka_mem_free) */
    rd_kafka_mem_free(rk, r);
    rd_kafka_mem_free(rk, a);
    rd_kafka_mem_free(rk, b);
    if (md)
        rd_kafka_consumer_group_metadata_destroy(md);
    if (pa)
        rd_kafka_consumer_group_metadata_destroy(pa);
    if (pb)
        rd_kafka_consumer_group_metadata_destroy(pb);
    rd_kafka_mem_free(rk, member);
    return gen;
}

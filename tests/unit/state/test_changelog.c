/*
 * The local changelog (state/changelog.c): replay returns what was
 * committed; torn tails (cut files, missing markers, zeroed pages, garbage)
 * are discarded and truncated; corruption before the last group is an
 * error that names the file and offset and truncates nothing; `upto` and
 * from_offset; segment rolling and retention; failed writes (ENOSPC via
 * /dev/full, partial writes, failed fdatasync) leave a consistent log.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eddy_int.h"
#include "state/changelog.h"
#include "state/checkpoint.h"

#define SEG_BIG (64 * 1024 * 1024)

typedef struct fixture_s {
    char root[64];
    char dir[128]; /* the log directory, created by open */
    char seg0[256];
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/eddy-cl-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/task-0_1/changelog", f->root);
    snprintf(f->seg0, sizeof(f->seg0), "%s/seg-00000000000000000000.log", f->dir);
    *state = f;
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **state) {
    fixture_t *f = *state;
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ------------------------------------------------------------- helpers */

static eddy_changelog_t *open_log(const char *dir, int64_t segment_bytes) {
    char err[512] = "";
    eddy_changelog_t *cl = eddy__changelog_local_open(dir, segment_bytes, err, sizeof(err));
    if (!cl)
        fail_msg("open %s: %s", dir, err);
    return cl;
}

static eddy_err_t rec_update(void *opaque, uint16_t store, eddy_cl_op_t op, const char *key,
                             size_t klen, const char *val, size_t vlen) {
    eddy_buf_printf(opaque, "U%u/%d %.*s=%.*s\n", (unsigned)store, (int)op, (int)klen, key,
                    (int)vlen, val);
    return EDDY_OK;
}

static eddy_err_t rec_commit(void *opaque, uint64_t commit_id, const char *positions, size_t plen) {
    eddy_buf_printf(opaque, "C%" PRIu64 " [%.*s]\n", commit_id, (int)plen, positions);
    return EDDY_OK;
}

typedef struct replayed_s {
    eddy_err_t rc;
    char *text; /* what the callbacks saw, "" when nothing */
    uint64_t last_commit_id, end_offset;
    char err[512];
} replayed_t;

static replayed_t replay(eddy_changelog_t *cl, uint64_t from, uint64_t upto) {
    replayed_t r = {.last_commit_id = 12345, .end_offset = 12345};
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "%s", "");
    r.rc = eddy__cl_replay(cl, from, upto, rec_update, rec_commit, &b, &r.last_commit_id,
                           &r.end_offset, r.err, sizeof(r.err));
    r.text = b.p;
    return r;
}

/* Replay must succeed with exactly `expect`. */
static void replay_ok(eddy_changelog_t *cl, uint64_t from, uint64_t upto, const char *expect,
                      uint64_t last_commit_id, uint64_t end_offset) {
    replayed_t r = replay(cl, from, upto);
    if (r.rc != EDDY_OK)
        fail_msg("replay from %" PRIu64 ": %d %s", from, r.rc, r.err);
    assert_string_equal(r.text, expect);
    assert_true(r.last_commit_id == last_commit_id);
    assert_true(r.end_offset == end_offset);
    eddy_free(r.text);
}

/* Commit group `id`: n updates spread over three stores and all ops,
 * positions "pos=<id>". Returns the end offset. */
static uint64_t commit_group(eddy_changelog_t *cl, uint64_t id, int n) {
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        int kl = snprintf(k, sizeof(k), "k%" PRIu64 ".%d", id, i);
        int vl = snprintf(v, sizeof(v), "v%" PRIu64 ".%d", id, i);
        eddy_cl_op_t op = (eddy_cl_op_t)(1 + i % 3);
        if (op == EDDY_CL_DEL)
            vl = 0;
        if (eddy__cl_append(cl, (uint16_t)(i % 3), op, k, (size_t)kl, v, (size_t)vl) != EDDY_OK)
            fail_msg("append: %s", eddy__cl_errstr(cl));
    }
    char pos[32], err[512] = "";
    int pl = snprintf(pos, sizeof(pos), "pos=%" PRIu64, id);
    uint64_t end = 0;
    if (eddy__cl_commit(cl, id, pos, (size_t)pl, &end, err, sizeof(err)) != EDDY_OK)
        fail_msg("commit %" PRIu64 ": %s", id, err);
    assert_true(end == eddy__cl_end_offset(cl));
    return end;
}

/* What replay reports for commit_group(id, n). */
static void expect_group(eddy_buf_t *b, uint64_t id, int n) {
    for (int i = 0; i < n; i++) {
        int op = 1 + i % 3;
        if (op == EDDY_CL_DEL)
            eddy_buf_printf(b, "U%d/%d k%" PRIu64 ".%d=\n", i % 3, op, id, i);
        else
            eddy_buf_printf(b, "U%d/%d k%" PRIu64 ".%d=v%" PRIu64 ".%d\n", i % 3, op, id, i, id, i);
    }
    eddy_buf_printf(b, "C%" PRIu64 " [pos=%" PRIu64 "]\n", id, id);
}

/* Expected text of groups ids[0..n) of `nupd` updates each. */
static char *expect_groups(const uint64_t *ids, int n, int nupd) {
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "%s", "");
    for (int i = 0; i < n; i++)
        expect_group(&b, ids[i], nupd);
    return b.p;
}

static void replay_groups_ok(eddy_changelog_t *cl, uint64_t from, uint64_t upto,
                             const uint64_t *ids, int n, int nupd, uint64_t end_offset) {
    char *expect = expect_groups(ids, n, nupd);
    replay_ok(cl, from, upto, expect, n ? ids[n - 1] : 0, end_offset);
    eddy_free(expect);
}

static uint64_t file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

static unsigned char *slurp(const char *path, size_t *len) {
    size_t n = (size_t)file_size(path);
    unsigned char *p = malloc(n + 1);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(p, 1, n, fp), n);
    fclose(fp);
    *len = n;
    return p;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static int count_segments(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (!strncmp(de->d_name, "seg-", 4))
            n++;
    closedir(d);
    return n;
}

static void seg_path(const fixture_t *f, uint64_t base, char *buf, size_t size) {
    snprintf(buf, size, "%s/seg-%020" PRIu64 ".log", f->dir, base);
}

/* Three groups of 3 updates; e[i] = end offset of group i+1. Closed. */
static void three_groups(fixture_t *f, uint64_t e[3]) {
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    for (int i = 0; i < 3; i++)
        e[i] = commit_group(cl, (uint64_t)i + 1, 3);
    eddy__cl_close(cl);
}

static const uint64_t ids_1_to_5[] = {1, 2, 3, 4, 5};

/* --------------------------------------------------------------- tests */

static void replay_returns_updates_in_order_with_each_commits_positions(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    assert_true(eddy__cl_end_offset(cl) == 0 && eddy__cl_start_offset(cl) == 0);
    char err[512] = "";
    uint64_t e1, e2, e3;
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_PUT, "a", 1, "1", 1), EDDY_OK);
    assert_int_equal(eddy__cl_append(cl, 7, EDDY_CL_PUT, "b", 1, "", 0), EDDY_OK);
    assert_int_equal(eddy__cl_commit(cl, 10, "p10", 3, &e1, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_DEL, "a", 1, NULL, 0), EDDY_OK);
    assert_int_equal(eddy__cl_append(cl, 65535, EDDY_CL_DEL_RANGE, "c", 1, "f", 1), EDDY_OK);
    assert_int_equal(eddy__cl_commit(cl, 11, "p11", 3, &e2, err, sizeof(err)), EDDY_OK);
    /* A commit with no updates still records its positions. */
    assert_int_equal(eddy__cl_commit(cl, 12, "p12", 3, &e3, err, sizeof(err)), EDDY_OK);
    assert_true(0 < e1 && e1 < e2 && e2 < e3 && e3 == eddy__cl_end_offset(cl));
    const char *expect = "U0/1 a=1\nU7/1 b=\nC10 [p10]\n"
                         "U0/2 a=\nU65535/3 c=f\nC11 [p11]\n"
                         "C12 [p12]\n";
    replay_ok(cl, 0, UINT64_MAX, expect, 12, e3);
    eddy__cl_close(cl);

    cl = open_log(f->dir, SEG_BIG);
    replay_ok(cl, 0, UINT64_MAX, expect, 12, e3);
    eddy__cl_close(cl);
    assert_true(file_size(f->seg0) == e3);
}

static void empty_log_replays_nothing_and_accepts_appends(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    replay_ok(cl, 0, UINT64_MAX, "", 0, 0);
    uint64_t e1 = commit_group(cl, 1, 2);
    eddy__cl_close(cl);
    cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 1, 2, e1);
    eddy__cl_close(cl);
}

static void reopen_after_close_continues_offsets_and_commit_ids(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    commit_group(cl, 1, 3);
    uint64_t e2 = commit_group(cl, 2, 3);
    eddy__cl_close(cl);

    cl = open_log(f->dir, SEG_BIG);
    assert_true(eddy__cl_end_offset(cl) == e2);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 2, 3, e2);
    char err[512] = "";
    assert_int_equal(eddy__cl_commit(cl, 2, "", 0, NULL, err, sizeof(err)), EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "last commit id 2"));
    uint64_t e3 = commit_group(cl, 3, 3);
    assert_true(e3 > e2);
    eddy__cl_close(cl);

    cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 3, 3, e3);
    eddy__cl_close(cl);
    assert_true(file_size(f->seg0) == e3);
}

static void appending_to_a_log_with_data_before_replay_is_refused(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    char err[512] = "";
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_PUT, "k", 1, "v", 1), EDDY_ERR_STATE);
    assert_non_null(strstr(eddy__cl_errstr(cl), "replay"));
    assert_int_equal(eddy__cl_commit(cl, 4, "", 0, NULL, err, sizeof(err)), EDDY_ERR_STATE);
    assert_non_null(strstr(err, "replay"));
    replay_groups_ok(cl, e[2], UINT64_MAX, NULL, 0, 0, e[2]);
    assert_true(commit_group(cl, 4, 1) > e[2]);
    eddy__cl_close(cl);
}

static void torn_tail_at_every_cut_is_discarded_and_truncated(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    size_t len;
    unsigned char *all = slurp(f->seg0, &len);
    assert_true(len == e[2]);
    for (uint64_t cut = e[1]; cut < e[2]; cut++) {
        spit(f->seg0, all, (size_t)cut);
        eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
        replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 2, 3, e[1]);
        assert_true(file_size(f->seg0) == e[1]);
        assert_true(eddy__cl_end_offset(cl) == e[1]);
        eddy__cl_close(cl);
    }
    /* New appends after the truncating replay work and replay later. */
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 2, 3, e[1]);
    uint64_t e4 = commit_group(cl, 4, 3);
    eddy__cl_close(cl);
    cl = open_log(f->dir, SEG_BIG);
    const uint64_t ids[] = {1, 2, 4};
    replay_groups_ok(cl, 0, UINT64_MAX, ids, 3, 3, e4);
    eddy__cl_close(cl);
    free(all);
}

static void group_without_its_commit_marker_is_discarded(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    /* Crash after the updates of group 3 reached the file, before its
     * marker (u8 kind, u64 id, u32 count, u32 plen, "pos=3"). */
    uint64_t marker_bytes = 1 + 8 + 4 + 4 + strlen("pos=3");
    assert_int_equal(truncate(f->seg0, (off_t)(e[2] - marker_bytes)), 0);
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 2, 3, e[1]);
    eddy__cl_close(cl);
    assert_true(file_size(f->seg0) == e[1]);
}

static void last_group_with_zeroed_pages_is_discarded(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    size_t len;
    unsigned char *all = slurp(f->seg0, &len);
    /* The file grew but some blocks never reached the disk before the
     * crash: zeros in the body, then zeros over the whole group. */
    for (int whole = 0; whole < 2; whole++) {
        unsigned char *copy = malloc(len);
        memcpy(copy, all, len);
        uint64_t from = whole ? e[1] : e[1] + 30;
        memset(copy + from, 0, (size_t)(e[2] - from - (whole ? 0 : 5)));
        spit(f->seg0, copy, len);
        eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
        replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 2, 3, e[1]);
        eddy__cl_close(cl);
        assert_true(file_size(f->seg0) == e[1]);
        free(copy);
    }
    free(all);
}

static void garbage_after_the_last_commit_is_discarded(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    size_t len;
    unsigned char *all = slurp(f->seg0, &len);
    unsigned char *more = malloc(len + 8192);
    memcpy(more, all, len);
    unsigned seed = 12345;
    for (size_t i = 0; i < 8192; i++) {
        seed = seed * 1103515245u + 12345u;
        more[len + i] = i < 4096 ? (unsigned char)(seed >> 16) : 0;
    }
    for (size_t extra = 1; extra <= 8192; extra *= 4) {
        spit(f->seg0, more, len + extra);
        eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
        replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 3, 3, e[2]);
        eddy__cl_close(cl);
        assert_true(file_size(f->seg0) == e[2]);
    }
    free(more);
    free(all);
}

static void corruption_before_the_last_group_is_an_error_naming_path_and_offset(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    size_t len;
    unsigned char *all = slurp(f->seg0, &len);
    /* Every byte of groups 1 and 2: never a silent reset. */
    for (uint64_t i = 0; i < e[1]; i++) {
        all[i] ^= 0x5a;
        spit(f->seg0, all, len);
        all[i] ^= 0x5a;
        eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
        replayed_t r = replay(cl, 0, UINT64_MAX);
        if (r.rc != EDDY_ERR_IO)
            fail_msg("byte %" PRIu64 " flipped: replay returned %d (%s)", i, r.rc, r.err);
        char where[64];
        snprintf(where, sizeof(where), " at offset %" PRIu64 " ", i < e[0] ? 0 : e[0]);
        if (!strstr(r.err, f->seg0) || !strstr(r.err, where) || !strstr(r.err, "not the tail"))
            fail_msg("byte %" PRIu64 " flipped: message \"%s\" lacks path or offset", i, r.err);
        /* Nothing was truncated and the handle refuses to write. */
        assert_true(file_size(f->seg0) == e[2]);
        char err[512];
        assert_int_equal(eddy__cl_commit(cl, 9, "", 0, NULL, err, sizeof(err)), EDDY_ERR_STATE);
        eddy_free(r.text);
        eddy__cl_close(cl);
    }
    free(all);
}

static void failed_replay_blocks_appends_until_a_replay_succeeds(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG); /* empty: appends allowed */
    for (uint64_t id = 1; id <= 3; id++)
        commit_group(cl, id, 3);
    int fd = open(f->seg0, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, 30), 1);
    char flipped = (char)(c ^ 1);
    assert_int_equal(pwrite(fd, &flipped, 1, 30), 1);
    replayed_t r = replay(cl, 0, UINT64_MAX);
    assert_int_equal(r.rc, EDDY_ERR_IO);
    eddy_free(r.text);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_PUT, "k", 1, "v", 1), EDDY_ERR_STATE);
    assert_int_equal(pwrite(fd, &c, 1, 30), 1);
    close(fd);
    r = replay(cl, 0, UINT64_MAX);
    assert_int_equal(r.rc, EDDY_OK);
    eddy_free(r.text);
    assert_true(commit_group(cl, 4, 1) > r.end_offset);
    eddy__cl_close(cl);
}

static void valid_group_of_unknown_format_version_is_an_error_not_a_torn_tail(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    size_t len;
    unsigned char *all = slurp(f->seg0, &len);
    unsigned char *h = all + e[1]; /* header of the last group */
    eddy__put_le16(h + 4, 2);
    eddy__put_le32(h + 20, eddy__crc32c(0, h, 20));
    spit(f->seg0, all, len);
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    replayed_t r = replay(cl, 0, UINT64_MAX);
    assert_int_equal(r.rc, EDDY_ERR_IO);
    assert_non_null(strstr(r.err, "version 2"));
    assert_true(file_size(f->seg0) == e[2]);
    eddy_free(r.text);
    eddy__cl_close(cl);
    free(all);
}

static void upto_stops_at_commit_n_and_truncates_later_groups(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    uint64_t e[5];
    for (int i = 0; i < 5; i++)
        e[i] = commit_group(cl, (uint64_t)i + 1, 2);
    replay_groups_ok(cl, 0, 3, ids_1_to_5, 3, 2, e[2]);
    assert_true(file_size(f->seg0) == e[2]);
    /* Commit ids continue after the cut: 4 is reused. */
    uint64_t e4 = commit_group(cl, 4, 2);
    assert_true(e4 == e[3]);
    eddy__cl_close(cl);
    cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 4, 2, e4);
    eddy__cl_close(cl);
}

static void upto_deletes_later_segments(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, 1); /* one group per segment */
    uint64_t e[5];
    for (int i = 0; i < 5; i++)
        e[i] = commit_group(cl, (uint64_t)i + 1, 2);
    eddy__cl_close(cl);
    assert_int_equal(count_segments(f->dir), 5);
    cl = open_log(f->dir, 1);
    replay_groups_ok(cl, 0, 2, ids_1_to_5, 2, 2, e[1]);
    assert_int_equal(count_segments(f->dir), 2);
    assert_true(eddy__cl_end_offset(cl) == e[1]);
    uint64_t e3 = commit_group(cl, 3, 2);
    assert_true(e3 == e[2]);
    eddy__cl_close(cl);
    cl = open_log(f->dir, 1);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 3, 2, e3);
    eddy__cl_close(cl);
}

static void replay_from_an_intermediate_offset_returns_only_later_groups(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, e[0], UINT64_MAX, ids_1_to_5 + 1, 2, 3, e[2]);
    replay_groups_ok(cl, e[1], UINT64_MAX, ids_1_to_5 + 2, 1, 3, e[2]);
    replay_ok(cl, e[2], UINT64_MAX, "", 0, e[2]);
    /* Not a group boundary (even inside the last group): an error, and
     * nothing is truncated. */
    uint64_t bad[] = {1, e[0] + 1, e[1] - 1, e[1] + 5, e[2] - 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        replayed_t r = replay(cl, bad[i], UINT64_MAX);
        assert_int_equal(r.rc, EDDY_ERR_INVAL);
        assert_non_null(strstr(r.err, "not a commit boundary"));
        assert_string_equal(r.text, "");
        assert_true(file_size(f->seg0) == e[2]);
        eddy_free(r.text);
    }
    /* Past the end (say a lost last segment): an error. */
    replayed_t r = replay(cl, e[2] + 100, UINT64_MAX);
    assert_int_equal(r.rc, EDDY_ERR_IO);
    assert_non_null(strstr(r.err, "past the end"));
    eddy_free(r.text);
    eddy__cl_close(cl);
}

static void segments_roll_at_segment_bytes_and_truncate_before_drops_old_ones(void **state) {
    fixture_t *f = *state;
    const int64_t seg_bytes = 256;
    eddy_changelog_t *cl = open_log(f->dir, seg_bytes);
    uint64_t e[20];
    for (int i = 0; i < 20; i++)
        e[i] = commit_group(cl, (uint64_t)i + 1, 3);
    uint64_t group = e[1] - e[0];
    int nseg = count_segments(f->dir);
    assert_true(nseg > 3);
    /* Segments are contiguous; each non-last one has reached seg_bytes
     * and holds whole groups. */
    uint64_t base = 0;
    for (int s = 0; s < nseg; s++) {
        char path[256];
        seg_path(f, base, path, sizeof(path));
        uint64_t size = file_size(path);
        if (s < nseg - 1)
            assert_true(size >= (uint64_t)seg_bytes && size < (uint64_t)seg_bytes + 2 * group);
        bool boundary = false;
        for (int i = 0; i < 20; i++)
            boundary |= e[i] == base + size;
        assert_true(boundary);
        base += size;
    }
    assert_true(base == e[19]);
    eddy__cl_close(cl);

    cl = open_log(f->dir, seg_bytes);
    uint64_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = (uint64_t)i + 1;
    replay_groups_ok(cl, 0, UINT64_MAX, ids, 20, 3, e[19]);

    char err[512] = "";
    assert_int_equal(eddy__cl_truncate_before(cl, e[9], err, sizeof(err)), EDDY_OK);
    uint64_t start = eddy__cl_start_offset(cl);
    assert_true(start > 0 && start <= e[9] && e[9] - start < (uint64_t)seg_bytes + 2 * group);
    assert_true(count_segments(f->dir) < nseg);
    char path0[256];
    seg_path(f, start, path0, sizeof(path0));
    assert_int_equal(access(path0, F_OK), 0);
    assert_int_equal(access(f->seg0, F_OK), -1);
    replay_groups_ok(cl, e[9], UINT64_MAX, ids + 10, 10, 3, e[19]);
    replayed_t r = replay(cl, 0, UINT64_MAX);
    assert_int_equal(r.rc, EDDY_ERR_NOENT);
    assert_non_null(strstr(r.err, "first retained offset"));
    eddy_free(r.text);
    /* The segment being written is never dropped. */
    assert_int_equal(eddy__cl_truncate_before(cl, UINT64_MAX, err, sizeof(err)), EDDY_OK);
    assert_int_equal(count_segments(f->dir), 1);
    assert_true(eddy__cl_end_offset(cl) == e[19]);
    uint64_t keep = eddy__cl_start_offset(cl);
    eddy__cl_close(cl);

    cl = open_log(f->dir, seg_bytes);
    assert_true(eddy__cl_start_offset(cl) == keep);
    replay_groups_ok(cl, e[18], UINT64_MAX, ids + 19, 1, 3, e[19]);
    assert_true(commit_group(cl, 21, 3) > e[19]);
    eddy__cl_close(cl);
}

static void missing_or_short_middle_segment_is_an_error(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, 1);
    uint64_t e[4];
    for (int i = 0; i < 4; i++)
        e[i] = commit_group(cl, (uint64_t)i + 1, 2);
    eddy__cl_close(cl);
    char mid[256], err[512] = "";
    seg_path(f, e[1], mid, sizeof(mid));

    assert_int_equal(truncate(mid, (off_t)(e[2] - e[1] - 1)), 0);
    assert_null(eddy__changelog_local_open(f->dir, 1, err, sizeof(err)));
    assert_non_null(strstr(err, mid));
    assert_non_null(strstr(err, "missing, short"));

    assert_int_equal(unlink(mid), 0);
    err[0] = 0;
    assert_null(eddy__changelog_local_open(f->dir, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(count_segments(f->dir), 3);
}

static void second_open_of_the_same_log_is_refused(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    char err[512] = "";
    assert_null(eddy__changelog_local_open(f->dir, SEG_BIG, err, sizeof(err)));
    assert_non_null(strstr(err, "in use"));
    eddy__cl_close(cl);
    cl = open_log(f->dir, SEG_BIG);
    eddy__cl_close(cl);
}

static eddy_err_t fail_on_commit_2(void *opaque, uint64_t commit_id, const char *positions,
                                   size_t plen) {
    (void)positions, (void)plen;
    ++*(int *)opaque;
    return commit_id == 2 ? EDDY_ERR_TYPE : EDDY_OK;
}

static void callback_error_stops_replay_without_truncating(void **state) {
    fixture_t *f = *state;
    uint64_t e[3];
    three_groups(f, e);
    /* A torn tail too: a failed replay must not cut it either. */
    int fd = open(f->seg0, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "torn", 4), 4);
    close(fd);
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    char err[512] = "";
    int calls = 0;
    eddy_err_t rc = eddy__cl_replay(cl, 0, UINT64_MAX, NULL, fail_on_commit_2, &calls, NULL, NULL,
                                    err, sizeof(err));
    assert_int_equal(rc, EDDY_ERR_TYPE);
    assert_int_equal(calls, 2);
    assert_non_null(strstr(err, "commit 2"));
    assert_non_null(strstr(err, "callback failed"));
    assert_true(file_size(f->seg0) == e[2] + 4);
    assert_int_equal(eddy__cl_commit(cl, 4, "", 0, NULL, err, sizeof(err)), EDDY_ERR_STATE);
    /* NULL callbacks: a replay that only checks and repairs the log. */
    uint64_t last = 0, end = 0;
    rc = eddy__cl_replay(cl, 0, UINT64_MAX, NULL, NULL, NULL, &last, &end, err, sizeof(err));
    assert_int_equal(rc, EDDY_OK);
    assert_true(last == 3 && end == e[2] && file_size(f->seg0) == e[2]);
    eddy__cl_close(cl);
}

/* ------------------------------------------------ failing writes (hooks) */

typedef struct hook_state_s {
    int full_fd; /* /dev/full */
    int calls;
    int fail_after; /* partial: write this many bytes, then ENOSPC */
} hook_state_t;

static ssize_t pwrite_dev_full(void *opaque, int fd, const void *buf, size_t len, off_t off) {
    (void)fd, (void)off;
    hook_state_t *hs = opaque;
    hs->calls++;
    return write(hs->full_fd, buf, len);
}

static ssize_t pwrite_partial_then_enospc(void *opaque, int fd, const void *buf, size_t len,
                                          off_t off) {
    hook_state_t *hs = opaque;
    if (hs->calls++ == 0)
        return pwrite(fd, buf, (size_t)hs->fail_after < len ? (size_t)hs->fail_after : len, off);
    errno = ENOSPC;
    return -1;
}

static ssize_t pwrite_short_and_eintr(void *opaque, int fd, const void *buf, size_t len,
                                      off_t off) {
    hook_state_t *hs = opaque;
    if (hs->calls++ % 2 == 0) {
        errno = EINTR;
        return -1;
    }
    return pwrite(fd, buf, len < 7 ? len : 7, off);
}

static int fdatasync_eio(void *opaque, int fd) {
    (void)opaque, (void)fd;
    errno = EIO;
    return -1;
}

static void enospc_from_dev_full_fails_the_commit_and_keeps_the_log_consistent(void **state) {
    fixture_t *f = *state;
    hook_state_t hs = {.full_fd = open("/dev/full", O_WRONLY | O_CLOEXEC)};
    if (hs.full_fd < 0)
        skip();
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    uint64_t e1 = commit_group(cl, 1, 3);
    eddy_cl_local_hooks_t hooks = {.pwrite = pwrite_dev_full, .opaque = &hs};
    eddy__changelog_local_set_hooks(cl, &hooks);
    for (int i = 0; i < 3; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k2.%d", i);
        assert_int_equal(eddy__cl_append(cl, (uint16_t)(i % 3), (eddy_cl_op_t)(1 + i % 3), k, 4,
                                         "v2.0", i % 3 == 1 ? 0 : 4),
                         EDDY_OK);
    }
    char err[512] = "";
    uint64_t end = 0;
    assert_int_equal(eddy__cl_commit(cl, 2, "pos=2", 5, &end, err, sizeof(err)), EDDY_ERR_IO);
    assert_true(hs.calls > 0);
    assert_non_null(strstr(err, f->seg0));
    assert_non_null(strstr(err, strerror(ENOSPC)));
    assert_true(file_size(f->seg0) == e1 && eddy__cl_end_offset(cl) == e1);
    /* Space is back: the buffered updates are committed on retry. */
    eddy__changelog_local_set_hooks(cl, NULL);
    assert_int_equal(eddy__cl_commit(cl, 2, "pos=2", 5, &end, err, sizeof(err)), EDDY_OK);
    eddy__cl_close(cl);
    close(hs.full_fd);

    cl = open_log(f->dir, SEG_BIG);
    eddy_buf_t b = {0};
    expect_group(&b, 1, 3);
    eddy_buf_printf(&b, "U0/1 k2.0=v2.0\nU1/2 k2.1=\nU2/3 k2.2=v2.0\nC2 [pos=2]\n");
    replay_ok(cl, 0, UINT64_MAX, b.p, 2, end);
    eddy_buf_free(&b);
    eddy__cl_close(cl);
}

static void partial_write_then_enospc_is_rolled_back(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    uint64_t e1 = commit_group(cl, 1, 3);
    hook_state_t hs = {.fail_after = 20};
    eddy_cl_local_hooks_t hooks = {.pwrite = pwrite_partial_then_enospc, .opaque = &hs};
    eddy__changelog_local_set_hooks(cl, &hooks);
    assert_int_equal(eddy__cl_append(cl, 1, EDDY_CL_PUT, "k", 1, "v", 1), EDDY_OK);
    char err[512] = "";
    assert_int_equal(eddy__cl_commit(cl, 2, "", 0, NULL, err, sizeof(err)), EDDY_ERR_IO);
    assert_int_equal(hs.calls, 2);
    assert_non_null(strstr(err, strerror(ENOSPC)));
    assert_true(file_size(f->seg0) == e1);
    eddy__changelog_local_set_hooks(cl, NULL);
    eddy__cl_close(cl);
    cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 1, 3, e1);
    eddy__cl_close(cl);
}

static void short_writes_and_eintr_are_retried(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    hook_state_t hs = {0};
    eddy_cl_local_hooks_t hooks = {.pwrite = pwrite_short_and_eintr, .opaque = &hs};
    eddy__changelog_local_set_hooks(cl, &hooks);
    commit_group(cl, 1, 3);
    uint64_t e2 = commit_group(cl, 2, 3);
    assert_true(hs.calls > 2 * (int)(e2 / 7));
    eddy__cl_close(cl);
    cl = open_log(f->dir, SEG_BIG);
    replay_groups_ok(cl, 0, UINT64_MAX, ids_1_to_5, 2, 3, e2);
    eddy__cl_close(cl);
}

static void failed_fdatasync_refuses_further_writes_until_reopened(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    commit_group(cl, 1, 3);
    eddy_cl_local_hooks_t hooks = {.fdatasync = fdatasync_eio};
    eddy__changelog_local_set_hooks(cl, &hooks);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_PUT, "k", 1, "v", 1), EDDY_OK);
    char err[512] = "";
    assert_int_equal(eddy__cl_commit(cl, 2, "", 0, NULL, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, "fdatasync"));
    assert_non_null(strstr(err, strerror(EIO)));
    eddy__changelog_local_set_hooks(cl, NULL);
    assert_int_equal(eddy__cl_commit(cl, 2, "", 0, NULL, err, sizeof(err)), EDDY_ERR_STATE);
    assert_non_null(strstr(err, "reopen"));
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_PUT, "k", 1, "v", 1), EDDY_ERR_STATE);
    eddy__cl_close(cl);
    /* What reached the file is what replay sees; appends then continue. */
    cl = open_log(f->dir, SEG_BIG);
    replayed_t r = replay(cl, 0, UINT64_MAX);
    assert_int_equal(r.rc, EDDY_OK);
    assert_true(r.last_commit_id == 2);
    eddy_free(r.text);
    assert_true(commit_group(cl, 3, 1) > r.end_offset);
    eddy__cl_close(cl);
}

typedef struct big_seen_s {
    int n;
    unsigned store;
    size_t klen, vlen;
    char first, last;
} big_seen_t;

static eddy_err_t big_update(void *opaque, uint16_t store, eddy_cl_op_t op, const char *key,
                             size_t klen, const char *val, size_t vlen) {
    (void)op, (void)key;
    big_seen_t *seen = opaque;
    seen->n++;
    seen->store = store;
    seen->klen = klen;
    seen->vlen = vlen;
    seen->first = vlen ? val[0] : 0;
    seen->last = vlen ? val[vlen - 1] : 0;
    return EDDY_OK;
}

static void record_over_the_size_limit_is_rejected_with_a_clear_error(void **state) {
    fixture_t *f = *state;
    eddy_changelog_t *cl = open_log(f->dir, SEG_BIG);
    size_t max = EDDY_CL_MAX_RECORD_BYTES;
    char *big = calloc(1, max + 1);
    assert_non_null(big);
    assert_int_equal(eddy__cl_append(cl, 3, EDDY_CL_PUT, "k", 1, big, max), EDDY_ERR_INVAL);
    assert_non_null(strstr(eddy__cl_errstr(cl), "over the limit"));
    assert_non_null(strstr(eddy__cl_errstr(cl), "64 MiB"));
    assert_non_null(strstr(eddy__cl_errstr(cl), "store 3"));
    char err[512] = "";
    assert_int_equal(eddy__cl_commit(cl, 1, big, max + 1, NULL, err, sizeof(err)), EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "64 MiB"));
    assert_int_equal(eddy__cl_append(cl, 0, 9, "k", 1, "v", 1), EDDY_ERR_INVAL);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_DEL, "k", 1, "v", 1), EDDY_ERR_INVAL);
    /* The rejected updates are not in the group; one at the limit is. */
    big[0] = 'B';
    big[max - 1] = 'E';
    assert_int_equal(eddy__cl_append(cl, 3, EDDY_CL_PUT, NULL, 0, big, max), EDDY_OK);
    uint64_t end = 0;
    assert_int_equal(eddy__cl_commit(cl, 1, "p", 1, &end, err, sizeof(err)), EDDY_OK);
    eddy__cl_close(cl);
    free(big);

    cl = open_log(f->dir, SEG_BIG);
    big_seen_t seen = {0};
    uint64_t last = 0, end2 = 0;
    assert_int_equal(
        eddy__cl_replay(cl, 0, UINT64_MAX, big_update, NULL, &seen, &last, &end2, err, sizeof(err)),
        EDDY_OK);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.store, 3);
    assert_int_equal(seen.klen, 0);
    assert_true(seen.vlen == max && seen.first == 'B' && seen.last == 'E');
    assert_true(last == 1 && end2 == end);
    eddy__cl_close(cl);
}

static void bad_segment_bytes_and_unusable_directory_fail_to_open(void **state) {
    fixture_t *f = *state;
    char err[512] = "", path[256];
    assert_null(eddy__changelog_local_open(f->dir, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "segment_bytes"));
    snprintf(path, sizeof(path), "%s/file", f->root);
    spit(path, "x", 1);
    snprintf(path, sizeof(path), "%s/file/log", f->root);
    err[0] = 0;
    assert_null(eddy__changelog_local_open(path, SEG_BIG, err, sizeof(err)));
    assert_non_null(strstr(err, path));
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(replay_returns_updates_in_order_with_each_commits_positions),
        T(empty_log_replays_nothing_and_accepts_appends),
        T(reopen_after_close_continues_offsets_and_commit_ids),
        T(appending_to_a_log_with_data_before_replay_is_refused),
        T(torn_tail_at_every_cut_is_discarded_and_truncated),
        T(group_without_its_commit_marker_is_discarded),
        T(last_group_with_zeroed_pages_is_discarded),
        T(garbage_after_the_last_commit_is_discarded),
        T(corruption_before_the_last_group_is_an_error_naming_path_and_offset),
        T(failed_replay_blocks_appends_until_a_replay_succeeds),
        T(valid_group_of_unknown_format_version_is_an_error_not_a_torn_tail),
        T(upto_stops_at_commit_n_and_truncates_later_groups),
        T(upto_deletes_later_segments),
        T(replay_from_an_intermediate_offset_returns_only_later_groups),
        T(segments_roll_at_segment_bytes_and_truncate_before_drops_old_ones),
        T(missing_or_short_middle_segment_is_an_error),
        T(second_open_of_the_same_log_is_refused),
        T(callback_error_stops_replay_without_truncating),
        T(enospc_from_dev_full_fails_the_commit_and_keeps_the_log_consistent),
        T(partial_write_then_enospc_is_rolled_back),
        T(short_writes_and_eintr_are_retried),
        T(failed_fdatasync_refuses_further_writes_until_reopened),
        T(record_over_the_size_limit_is_rejected_with_a_clear_error),
        T(bad_segment_bytes_and_unusable_directory_fail_to_open),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Checkpoint files (state/checkpoint.c) and CRC-32C: round trip, missing
 * and corrupt files (every flipped byte, every truncation), failed writes
 * that must leave the old checkpoint alone, atomic replacement.
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
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/checkpoint.h"

typedef struct fixture_s {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/eddy-ckpt-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/task-0.ckpt", f->dir);
    *state = f;
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **state) {
    fixture_t *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static const eddy_ckpt_t sample = {.commit_id = 42,
                                   .changelog_offset = 0x123456789abcULL,
                                   .snapshot_id = 7,
                                   .created_ms = 1700000000123ULL};

static size_t read_file(const char *path, unsigned char *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static void write_file(const char *path, const unsigned char *buf, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    fclose(fp);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void crc32c_matches_the_standard_check_values(void **state) {
    (void)state;
    assert_int_equal(eddy__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(eddy__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    unsigned char zeros[32] = {0};
    assert_int_equal(eddy__crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    /* Incremental == one shot. */
    assert_int_equal(eddy__crc32c(eddy__crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void crc32c_hardware_and_table_paths_agree_at_every_length_and_alignment(void **state) {
    (void)state;
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof(buf); len += 1 + len / 16)
            assert_int_equal(eddy__crc32c(0, buf + off, len), eddy__crc32c_sw(0, buf + off, len));
}

static void checkpoint_round_trips_every_field(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(eddy__ckpt_write(f->path, &sample, err, sizeof(err)), EDDY_OK);
    eddy_ckpt_t c;
    memset(&c, 0xff, sizeof(c));
    assert_int_equal(eddy__ckpt_read(f->path, &c, err, sizeof(err)), EDDY_OK);
    assert_true(c.commit_id == sample.commit_id);
    assert_true(c.changelog_offset == sample.changelog_offset);
    assert_true(c.snapshot_id == sample.snapshot_id);
    assert_true(c.created_ms == sample.created_ms);
    /* Only the checkpoint itself is left: no tmp file. */
    assert_int_equal(count_entries(f->dir), 1);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, EDDY_CKPT_FILE_BYTES);
}

static void missing_checkpoint_is_noent_naming_the_path(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    eddy_ckpt_t c;
    assert_int_equal(eddy__ckpt_read(f->path, &c, err, sizeof(err)), EDDY_ERR_NOENT);
    assert_non_null(strstr(err, f->path));
}

static void every_single_byte_corruption_is_decode_error(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(eddy__ckpt_write(f->path, &sample, err, sizeof(err)), EDDY_OK);
    unsigned char good[256], bad[256];
    size_t n = read_file(f->path, good, sizeof(good));
    assert_int_equal(n, EDDY_CKPT_FILE_BYTES);
    for (size_t i = 0; i < n; i++) {
        static const unsigned char flips[] = {0x01, 0x80, 0xff};
        for (size_t k = 0; k < sizeof(flips); k++) {
            memcpy(bad, good, n);
            bad[i] ^= flips[k];
            write_file(f->path, bad, n);
            eddy_ckpt_t c = sample;
            err[0] = 0;
            eddy_err_t rc = eddy__ckpt_read(f->path, &c, err, sizeof(err));
            if (rc != EDDY_ERR_DECODE)
                fail_msg("byte %zu ^ 0x%02x: got %d (%s), expected DECODE", i, flips[k], rc, err);
            assert_non_null(strstr(err, f->path));
            assert_non_null(strstr(err, "corrupt"));
        }
    }
}

static void every_truncation_and_trailing_garbage_is_decode_error(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(eddy__ckpt_write(f->path, &sample, err, sizeof(err)), EDDY_OK);
    unsigned char good[256];
    size_t n = read_file(f->path, good, sizeof(good));
    for (size_t len = 0; len < n; len++) {
        write_file(f->path, good, len);
        eddy_ckpt_t c;
        eddy_err_t rc = eddy__ckpt_read(f->path, &c, err, sizeof(err));
        if (rc != EDDY_ERR_DECODE)
            fail_msg("truncated to %zu bytes: got %d (%s), expected DECODE", len, rc, err);
        assert_non_null(strstr(err, f->path));
    }
    unsigned char longer[256];
    memcpy(longer, good, n);
    longer[n] = 0;
    write_file(f->path, longer, n + 1);
    eddy_ckpt_t c;
    assert_int_equal(eddy__ckpt_read(f->path, &c, err, sizeof(err)), EDDY_ERR_DECODE);
    assert_non_null(strstr(err, "trailing"));
}

static void failed_write_in_missing_directory_leaves_no_file(void **state) {
    fixture_t *f = *state;
    char path[256], err[512] = "";
    snprintf(path, sizeof(path), "%s/no-such-dir/task-0.ckpt", f->dir);
    assert_int_equal(eddy__ckpt_write(path, &sample, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
    assert_int_equal(count_entries(f->dir), 0);
}

static void failed_write_leaves_the_old_checkpoint_intact(void **state) {
    fixture_t *f = *state;
    char err[512] = "", tmp[256];
    assert_int_equal(eddy__ckpt_write(f->path, &sample, err, sizeof(err)), EDDY_OK);
    /* Make the tmp file impossible to create (even as root): a directory. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    assert_int_equal(mkdir(tmp, 0755), 0);
    eddy_ckpt_t next = sample;
    next.commit_id = 43;
    assert_int_equal(eddy__ckpt_write(f->path, &next, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, f->path));
    eddy_ckpt_t c;
    assert_int_equal(eddy__ckpt_read(f->path, &c, err, sizeof(err)), EDDY_OK);
    assert_true(c.commit_id == 42);
    rmdir(tmp);
}

static void second_write_atomically_replaces_the_first(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(eddy__ckpt_write(f->path, &sample, err, sizeof(err)), EDDY_OK);
    eddy_ckpt_t next = {.commit_id = 43, .changelog_offset = 99, .snapshot_id = 0, .created_ms = 1};
    assert_int_equal(eddy__ckpt_write(f->path, &next, err, sizeof(err)), EDDY_OK);
    eddy_ckpt_t c;
    assert_int_equal(eddy__ckpt_read(f->path, &c, err, sizeof(err)), EDDY_OK);
    assert_true(c.commit_id == 43 && c.changelog_offset == 99 && c.snapshot_id == 0 &&
                c.created_ms == 1);
    assert_int_equal(count_entries(f->dir), 1);
}

static void stale_tmp_file_from_a_crash_is_overwritten(void **state) {
    fixture_t *f = *state;
    char err[512] = "", tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    write_file(tmp,
               (const unsigned char *)"garbage from a crash, longer than a checkpoint file "
                                      "would ever be.........",
               70);
    assert_int_equal(eddy__ckpt_write(f->path, &sample, err, sizeof(err)), EDDY_OK);
    eddy_ckpt_t c;
    assert_int_equal(eddy__ckpt_read(f->path, &c, err, sizeof(err)), EDDY_OK);
    assert_true(c.commit_id == 42);
    assert_int_equal(access(tmp, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_matches_the_standard_check_values),
        cmocka_unit_test(crc32c_hardware_and_table_paths_agree_at_every_length_and_alignment),
        cmocka_unit_test_setup_teardown(checkpoint_round_trips_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_checkpoint_is_noent_naming_the_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(every_single_byte_corruption_is_decode_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(every_truncation_and_trailing_garbage_is_decode_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_in_missing_directory_leaves_no_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failed_write_leaves_the_old_checkpoint_intact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(second_write_atomically_replaces_the_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stale_tmp_file_from_a_crash_is_overwritten, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Checkpoint files and CRC-32C.
 *
 * File format, version 1 (52 bytes, little-endian):
 *
 *   0  "EDDYCKPT"           magic, 8 bytes
 *   8  u32 version          1
 *  12  u32 payload_len      32
 *  16  u64 commit_id
 *  24  u64 changelog_offset
 *  32  u64 snapshot_id
 *  40  u64 created_ms
 *  48  u32 crc32c           of bytes 0..47
 *
 * The reader insists on the exact length, so a truncated file, a file
 * with trailing bytes and every single flipped byte decode as corrupt.
 * A later version appends to the payload and bumps version; readers of
 * version 1 reject it rather than guess.
 *
 * CRC-32C is shared with the changelog (state/changelog.c). The tables are
 * built once (pthread_once) and never written again.
 */
#include "checkpoint.h"

#include "eddy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- CRC-32C */

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_tab[8][256]; /* written once under crc_once */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc_impl)(uint32_t, const unsigned char *, size_t);

static uint32_t crc32c_sw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi =
            (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
              crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
              crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
        len--;
    }
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--)
        crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
#endif

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = crc_tab[0][crc_tab[t - 1][i] & 0xff] ^ (crc_tab[t - 1][i] >> 8);
    crc_impl = crc32c_sw_raw;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        crc_impl = crc32c_hw_raw;
#endif
}

uint32_t eddy__crc32c_sw(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    return ~crc32c_sw_raw(~crc, data, len);
}

uint32_t eddy__crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    return ~crc_impl(~crc, data, len);
}

/* ------------------------------------------------------------ checkpoints */

#define CKPT_MAGIC "EDDYCKPT"
#define CKPT_VERSION 1
#define CKPT_PAYLOAD_BYTES 32

/* fsync the directory holding path, so a rename in it is durable. */
static int fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir =
        slash ? eddy_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : eddy_strdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    eddy_free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

eddy_err_t eddy__ckpt_write(const char *path, const eddy_ckpt_t *c, char *errstr,
                            size_t errstr_size) {
    unsigned char b[EDDY_CKPT_FILE_BYTES];
    memcpy(b, CKPT_MAGIC, 8);
    eddy__put_le32(b + 8, CKPT_VERSION);
    eddy__put_le32(b + 12, CKPT_PAYLOAD_BYTES);
    eddy__put_le64(b + 16, c->commit_id);
    eddy__put_le64(b + 24, c->changelog_offset);
    eddy__put_le64(b + 32, c->snapshot_id);
    eddy__put_le64(b + 40, c->created_ms);
    eddy__put_le32(b + 48, eddy__crc32c(0, b, 48));

    char *tmp = eddy_asprintf("%s.tmp", path);
    const char *what = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail_nofile;
    what = "write";
    for (size_t off = 0; off < sizeof(b);) {
        ssize_t w = write(fd, b + off, sizeof(b) - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            goto fail;
        }
        off += (size_t)w;
    }
    what = "fsync";
    if (fsync(fd) != 0)
        goto fail;
    what = "close";
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    what = "rename";
    if (rename(tmp, path) != 0)
        goto fail;
    eddy_free(tmp);
    /* The new content is in place; only the rename's durability is at stake. */
    if (fsync_parent(path) != 0) {
        eddy__seterr(errstr, errstr_size, "checkpoint %s: fsync of directory: %s", path,
                     strerror(errno));
        return EDDY_ERR_IO;
    }
    return EDDY_OK;

fail : {
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
}
fail_nofile:
    eddy__seterr(errstr, errstr_size, "checkpoint %s: %s %s: %s", path, what, tmp, strerror(errno));
    eddy_free(tmp);
    return EDDY_ERR_IO;
}

eddy_err_t eddy__ckpt_read(const char *path, eddy_ckpt_t *c, char *errstr, size_t errstr_size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        eddy__seterr(errstr, errstr_size, "checkpoint %s: %s", path, strerror(e));
        return e == ENOENT ? EDDY_ERR_NOENT : EDDY_ERR_IO;
    }
    /* One byte more than a valid file, to see trailing garbage. */
    unsigned char b[EDDY_CKPT_FILE_BYTES + 1];
    size_t len = 0;
    while (len < sizeof(b)) {
        ssize_t r = read(fd, b + len, sizeof(b) - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            eddy__seterr(errstr, errstr_size, "checkpoint %s: read: %s", path, strerror(e));
            return EDDY_ERR_IO;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);

    const char *why = NULL;
    char whybuf[96];
    if (len >= 8 && memcmp(b, CKPT_MAGIC, 8) != 0) {
        why = "bad magic (not a checkpoint file)";
    } else if (len < 16) {
        snprintf(whybuf, sizeof(whybuf), "truncated (%zu bytes, expected %d)", len,
                 EDDY_CKPT_FILE_BYTES);
        why = whybuf;
    } else if (eddy__get_le32(b + 8) != CKPT_VERSION) {
        snprintf(whybuf, sizeof(whybuf), "unsupported version %" PRIu32, eddy__get_le32(b + 8));
        why = whybuf;
    } else if (eddy__get_le32(b + 12) != CKPT_PAYLOAD_BYTES) {
        snprintf(whybuf, sizeof(whybuf), "bad payload length %" PRIu32 " (expected %d)",
                 eddy__get_le32(b + 12), CKPT_PAYLOAD_BYTES);
        why = whybuf;
    } else if (len != EDDY_CKPT_FILE_BYTES) {
        snprintf(whybuf, sizeof(whybuf), "%s (%zu bytes, expected %d)",
                 len < EDDY_CKPT_FILE_BYTES ? "truncated" : "trailing bytes", len,
                 EDDY_CKPT_FILE_BYTES);
        why = whybuf;
    } else if (eddy__get_le32(b + 48) != eddy__crc32c(0, b, 48)) {
        why = "bad checksum";
    }
    if (why) {
        eddy__seterr(errstr, errstr_size, "checkpoint %s: corrupt: %s", path, why);
        return EDDY_ERR_DECODE;
    }
    c->commit_id = eddy__get_le64(b + 16);
    c->changelog_offset = eddy__get_le64(b + 24);
    c->snapshot_id = eddy__get_le64(b + 32);
    c->created_ms = eddy__get_le64(b + 40);
    return EDDY_OK;
}

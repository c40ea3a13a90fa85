/*
 * The local changelog: an append-only segment log, one per task, holding
 * the updates of all the task's stores (embedded mode; the Kafka
 * changelog implements the same vtable).
 *
 * Layout. The log is a directory of segment files seg-<base>.log, where
 * <base> is the 20-digit logical offset of the file's first byte; an
 * offset is base + position. Segments are contiguous: each one starts
 * where the previous one ends, which open() checks, so a missing or short
 * segment between the first and the last is an error. A segment holds
 * whole commit groups; a new one is started before a commit when the
 * current one has reached segment_bytes.
 *
 * A commit group is written with one pwrite() and made durable with one
 * fdatasync(). All integers are little-endian:
 *
 *   group header (24 bytes)
 *     u32 magic "ECLG"   u16 version (1)   u16 flags (0)
 *     u64 body_len       u32 crc32c(body)  u32 crc32c(header bytes 0..19)
 *   body: the updates, then the commit marker, nothing after it
 *     update: u8 op (1 PUT, 2 DEL, 3 DEL_RANGE)  u16 store  u32 klen
 *             u32 vlen  key  val                      (11 + klen + vlen)
 *     marker: u8 0x10  u64 commit_id  u32 nupdates  u32 plen  positions
 *
 * One CRC covers the whole body, so a group is applied only once all of
 * it has been read and checked: a group without its marker cannot pass.
 *
 * Torn tail or corruption. A crash can damage only the group being
 * written when it struck: the write may be short, or (pages reach the disk
 * in any order before fdatasync) have holes of zeros anywhere. So damage
 * is forgiven only in the last group of the last segment: the group has
 * an intact header and reaches (or passes) the end of the file, or its
 * header is damaged and no intact group header follows it. Such a tail is
 * truncated away: that commit never happened. Any other damage (a bad
 * group followed by an intact one, a group overrunning a segment that is
 * not the last) is an error naming the file and offset, and nothing is
 * truncated. A group whose CRCs are right but whose content is not
 * understood (a newer version, a malformed body) is an error too: those
 * bytes were written as they are, so they are not a torn write and must
 * not be thrown away.
 *
 * Replay from an offset first walks the group headers from the start of
 * its segment to check that the offset is a group boundary; a wrong offset
 * could otherwise make the middle of a valid last group look like a torn
 * tail and get it truncated.
 *
 * A failed write is rolled back with ftruncate() and may be retried. A
 * failed fdatasync() leaves the page cache in an unknown state (the kernel
 * may have dropped the dirty pages), so the handle refuses further writes:
 * close, reopen and replay, which sees what really is on disk.
 *
 * The directory is flock()ed while open, so two handles never write one
 * log. Thread: one thread per handle at a time.
 */
#include "changelog.h"

#include "checkpoint.h"
#include "eddy_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define GRP_HDR_BYTES 24
#define GRP_MAGIC 0x474c4345u /* "ECLG" */
#define GRP_VERSION 1
#define REC_MARKER 0x10
#define UPD_HDR_BYTES 11  /* op, store, klen, vlen */
#define MARK_HDR_BYTES 17 /* kind, commit_id, nupdates, plen */
#define READ_CHUNK_BYTES ((size_t)1 << 20)
#define IO_MAX_BYTES ((size_t)1 << 30)        /* per read/write call */
#define PENDING_KEEP_BYTES ((size_t)16 << 20) /* larger buffers are freed after commit */
#define SEG_NAME_LEN 28                       /* seg-<20 digits>.log */

typedef struct cl_seg_s {
    uint64_t base; /* logical offset of the first byte */
    uint64_t size; /* bytes in the file */
} cl_seg_t;

typedef struct cl_local_s {
    eddy_changelog_t cl; /* first: the vtable base */
    char *dir;
    int dirfd; /* held for fsync and the flock */
    int64_t segment_bytes;
    cl_seg_t *segs; /* ascending, contiguous; never empty while open */
    int nsegs, segs_cap;
    int fd;             /* the last segment, read-write */
    eddy_buf_t pending; /* group being built: header space, updates */
    uint32_t pending_n; /* updates in pending */
    uint64_t last_commit_id;
    bool need_replay; /* opened with data: replay before writing */
    bool failed;      /* a sync or rollback failed: no more writes */
    char failed_why[200];
    eddy_cl_local_hooks_t hooks;
} cl_local_t;

static const eddy_changelog_ops_t local_ops;

/* ------------------------------------------------------------- helpers */

static void seg_path(const cl_local_t *lc, uint64_t base, char *buf, size_t size) {
    snprintf(buf, size, "%s/seg-%020" PRIu64 ".log", lc->dir, base);
}

static cl_seg_t *last_seg(cl_local_t *lc) {
    return &lc->segs[lc->nsegs - 1];
}

static uint64_t log_end(cl_local_t *lc) {
    cl_seg_t *s = last_seg(lc);
    return s->base + s->size;
}

static bool parse_seg_name(const char *name, uint64_t *base) {
    if (strlen(name) != SEG_NAME_LEN || memcmp(name, "seg-", 4) != 0 ||
        strcmp(name + 24, ".log") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *base = v;
    return true;
}

static int seg_cmp(const void *a, const void *b) {
    uint64_t x = ((const cl_seg_t *)a)->base, y = ((const cl_seg_t *)b)->base;
    return x < y ? -1 : x > y;
}

static void push_seg(cl_local_t *lc, uint64_t base, uint64_t size) {
    if (lc->nsegs == lc->segs_cap) {
        lc->segs_cap = lc->segs_cap ? lc->segs_cap * 2 : 8;
        lc->segs = eddy_realloc(lc->segs, (size_t)lc->segs_cap * sizeof(*lc->segs));
    }
    lc->segs[lc->nsegs++] = (cl_seg_t){base, size};
}

static int mkdir_p(const char *dir) {
    char *p = eddy_strdup(dir);
    int rc = 0;
    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = -1;
    int saved = errno;
    eddy_free(p);
    errno = saved;
    return rc;
}

static ssize_t do_pwrite(cl_local_t *lc, int fd, const void *buf, size_t len, off_t off) {
    if (lc->hooks.pwrite)
        return lc->hooks.pwrite(lc->hooks.opaque, fd, buf, len, off);
    return pwrite(fd, buf, len, off);
}

static int do_fdatasync(cl_local_t *lc, int fd) {
    if (lc->hooks.fdatasync)
        return lc->hooks.fdatasync(lc->hooks.opaque, fd);
    return fdatasync(fd);
}

/* Write all of buf at off: retries short writes and EINTR. -1 + errno. */
static int write_all(cl_local_t *lc, int fd, const char *buf, size_t len, uint64_t off) {
    while (len) {
        size_t n = len < IO_MAX_BYTES ? len : IO_MAX_BYTES;
        ssize_t w = do_pwrite(lc, fd, buf, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static void set_failed(cl_local_t *lc, const char *why) {
    lc->failed = true;
    snprintf(lc->failed_why, sizeof(lc->failed_why), "%s", why);
}

/* Refuse writes on a failed handle or one that must replay first. */
static eddy_err_t check_writable(cl_local_t *lc, char *errstr, size_t errstr_size) {
    if (lc->failed) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: an earlier write failed (%s): close, reopen and replay",
                     lc->dir, lc->failed_why);
        return EDDY_ERR_STATE;
    }
    if (lc->need_replay) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: the log holds data: replay it before appending", lc->dir);
        return EDDY_ERR_STATE;
    }
    return EDDY_OK;
}

/* Create an empty segment at base and make its name durable. */
static eddy_err_t create_segment(cl_local_t *lc, uint64_t base, int *fdp, char *errstr,
                                 size_t errstr_size) {
    char path[PATH_MAX];
    seg_path(lc, base, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: create: %s", path, strerror(errno));
        return EDDY_ERR_IO;
    }
    if (fsync(lc->dirfd) != 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: fsync of directory: %s", lc->dir,
                     strerror(errno));
        close(fd);
        unlink(path);
        return EDDY_ERR_IO;
    }
    push_seg(lc, base, 0);
    *fdp = fd;
    return EDDY_OK;
}

/* ---------------------------------------------------------------- open */

eddy_changelog_t *eddy__changelog_local_open(const char *dir, int64_t segment_bytes, char *errstr,
                                             size_t errstr_size) {
    if (segment_bytes <= 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: segment_bytes %" PRId64 ": must be > 0",
                     dir, segment_bytes);
        return NULL;
    }
    if (!*dir || strlen(dir) + SEG_NAME_LEN + 2 > PATH_MAX) {
        eddy__seterr(errstr, errstr_size, "changelog \"%s\": bad directory name", dir);
        return NULL;
    }
    if (mkdir_p(dir) != 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: mkdir: %s", dir, strerror(errno));
        return NULL;
    }
    cl_local_t *lc = eddy_calloc(1, sizeof(*lc));
    lc->cl.ops = &local_ops;
    lc->dir = eddy_strdup(dir);
    lc->segment_bytes = segment_bytes;
    lc->fd = -1;
    char path[PATH_MAX];
    DIR *d = NULL;

    lc->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lc->dirfd < 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: open: %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(lc->dirfd, LOCK_EX | LOCK_NB) != 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: %s", dir,
                     errno == EWOULDBLOCK ? "in use by another open handle" : strerror(errno));
        goto fail;
    }
    d = opendir(dir);
    if (!d) {
        eddy__seterr(errstr, errstr_size, "changelog %s: opendir: %s", dir, strerror(errno));
        goto fail;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                eddy__seterr(errstr, errstr_size, "changelog %s: readdir: %s", dir,
                             strerror(errno));
                goto fail;
            }
            break;
        }
        uint64_t base;
        if (!parse_seg_name(de->d_name, &base))
            continue;
        struct stat st;
        if (fstatat(lc->dirfd, de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) {
            seg_path(lc, base, path, sizeof(path));
            eddy__seterr(errstr, errstr_size, "changelog %s: %s", path,
                         errno ? strerror(errno) : "not a regular file");
            goto fail;
        }
        push_seg(lc, base, (uint64_t)st.st_size);
    }
    closedir(d);
    d = NULL;

    if (lc->nsegs == 0) {
        if (create_segment(lc, 0, &lc->fd, errstr, errstr_size) != EDDY_OK)
            goto fail;
        return &lc->cl;
    }
    qsort(lc->segs, (size_t)lc->nsegs, sizeof(*lc->segs), seg_cmp);
    for (int i = 0; i + 1 < lc->nsegs; i++) {
        uint64_t end = lc->segs[i].base + lc->segs[i].size;
        if (end != lc->segs[i + 1].base) {
            seg_path(lc, lc->segs[i].base, path, sizeof(path));
            eddy__seterr(errstr, errstr_size,
                         "changelog %s: segment ends at offset %" PRIu64
                         " but the next segment seg-%020" PRIu64 ".log starts at offset %" PRIu64
                         ": a segment is missing, short or overlapping",
                         path, end, lc->segs[i + 1].base, lc->segs[i + 1].base);
            goto fail;
        }
    }
    seg_path(lc, last_seg(lc)->base, path, sizeof(path));
    lc->fd = open(path, O_RDWR | O_CLOEXEC);
    if (lc->fd < 0) {
        eddy__seterr(errstr, errstr_size, "changelog %s: open: %s", path, strerror(errno));
        goto fail;
    }
    lc->need_replay = log_end(lc) > lc->segs[0].base;
    return &lc->cl;

fail:
    if (d)
        closedir(d);
    lc->cl.ops->close(&lc->cl);
    return NULL;
}

void eddy__changelog_local_set_hooks(eddy_changelog_t *cl, const eddy_cl_local_hooks_t *hooks) {
    eddy_assert(cl->ops == &local_ops);
    cl_local_t *lc = (cl_local_t *)cl;
    if (hooks)
        lc->hooks = *hooks;
    else
        memset(&lc->hooks, 0, sizeof(lc->hooks));
}

/* --------------------------------------------------------------- write */

static eddy_err_t local_append(eddy_changelog_t *cl, uint16_t store, eddy_cl_op_t op,
                               const void *key, size_t klen, const void *val, size_t vlen) {
    cl_local_t *lc = (cl_local_t *)cl;
    eddy_err_t rc = check_writable(lc, cl->errstr, sizeof(cl->errstr));
    if (rc != EDDY_OK)
        return rc;
    const char *bad = NULL;
    if (op < EDDY_CL_PUT || op > EDDY_CL_DEL_RANGE)
        bad = "unknown op";
    else if (op == EDDY_CL_DEL && vlen)
        bad = "a delete carries no value";
    else if ((!key && klen) || (!val && vlen))
        bad = "NULL data with a non-zero length";
    else if (lc->pending_n == UINT32_MAX)
        bad = "too many updates in one commit";
    if (bad) {
        eddy__seterr(cl->errstr, sizeof(cl->errstr), "changelog %s: update of store %u: %s",
                     lc->dir, (unsigned)store, bad);
        return EDDY_ERR_INVAL;
    }
    if (klen > EDDY_CL_MAX_RECORD_BYTES || vlen > EDDY_CL_MAX_RECORD_BYTES - klen) {
        eddy__seterr(cl->errstr, sizeof(cl->errstr),
                     "changelog %s: update of store %u: key + value is %zu bytes, over the "
                     "limit of %u bytes (64 MiB)",
                     lc->dir, (unsigned)store, klen + vlen, EDDY_CL_MAX_RECORD_BYTES);
        return EDDY_ERR_INVAL;
    }
    eddy_buf_t *b = &lc->pending;
    eddy_buf_reserve(b, GRP_HDR_BYTES + UPD_HDR_BYTES + klen + vlen);
    if (b->len == 0)
        b->len = GRP_HDR_BYTES; /* filled in by commit */
    unsigned char *h = (unsigned char *)b->p + b->len;
    h[0] = (unsigned char)op;
    eddy__put_le16(h + 1, store);
    eddy__put_le32(h + 3, (uint32_t)klen);
    eddy__put_le32(h + 7, (uint32_t)vlen);
    b->len += UPD_HDR_BYTES;
    if (klen)
        eddy_buf_put(b, key, klen);
    if (vlen)
        eddy_buf_put(b, val, vlen);
    lc->pending_n++;
    return EDDY_OK;
}

static eddy_err_t local_commit(eddy_changelog_t *cl, uint64_t commit_id, const void *positions,
                               size_t plen, uint64_t *end_offset, char *errstr,
                               size_t errstr_size) {
    cl_local_t *lc = (cl_local_t *)cl;
    eddy_err_t rc = check_writable(lc, errstr, errstr_size);
    if (rc != EDDY_OK)
        return rc;
    if (commit_id == 0 || commit_id <= lc->last_commit_id) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: commit id %" PRIu64 ": must be > 0 and greater than the "
                     "last commit id %" PRIu64,
                     lc->dir, commit_id, lc->last_commit_id);
        return EDDY_ERR_INVAL;
    }
    if ((!positions && plen) || plen > EDDY_CL_MAX_RECORD_BYTES) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: commit %" PRIu64 ": positions of %zu bytes: %s", lc->dir,
                     commit_id, plen,
                     positions ? "over the limit of 64 MiB" : "NULL with a non-zero length");
        return EDDY_ERR_INVAL;
    }

    eddy_buf_t *b = &lc->pending;
    eddy_buf_reserve(b, GRP_HDR_BYTES + MARK_HDR_BYTES + plen);
    if (b->len == 0)
        b->len = GRP_HDR_BYTES;
    size_t mark_at = b->len; /* to take the marker back out on failure */
    unsigned char *m = (unsigned char *)b->p + b->len;
    m[0] = REC_MARKER;
    eddy__put_le64(m + 1, commit_id);
    eddy__put_le32(m + 9, lc->pending_n);
    eddy__put_le32(m + 13, (uint32_t)plen);
    b->len += MARK_HDR_BYTES;
    if (plen)
        eddy_buf_put(b, positions, plen);

    unsigned char *h = (unsigned char *)b->p;
    uint64_t body_len = b->len - GRP_HDR_BYTES;
    eddy__put_le32(h, GRP_MAGIC);
    eddy__put_le16(h + 4, GRP_VERSION);
    eddy__put_le16(h + 6, 0);
    eddy__put_le64(h + 8, body_len);
    eddy__put_le32(h + 16, eddy__crc32c(0, h + GRP_HDR_BYTES, body_len));
    eddy__put_le32(h + 20, eddy__crc32c(0, h, 20));

    if (last_seg(lc)->size >= (uint64_t)lc->segment_bytes) {
        int fd;
        rc = create_segment(lc, log_end(lc), &fd, errstr, errstr_size);
        if (rc != EDDY_OK) {
            b->len = mark_at;
            return rc;
        }
        close(lc->fd);
        lc->fd = fd;
    }
    cl_seg_t *seg = last_seg(lc);
    char path[PATH_MAX];
    if (write_all(lc, lc->fd, b->p, b->len, seg->size) != 0) {
        int e = errno;
        seg_path(lc, seg->base, path, sizeof(path));
        b->len = mark_at;
        if (ftruncate(lc->fd, (off_t)seg->size) != 0) {
            int e2 = errno;
            set_failed(lc, "rollback of a failed write failed");
            eddy__seterr(errstr, errstr_size,
                         "changelog %s: write of %zu bytes at offset %" PRIu64
                         ": %s; rollback failed: %s: close, reopen and replay",
                         path, mark_at + MARK_HDR_BYTES + plen, seg->base + seg->size, strerror(e),
                         strerror(e2));
        } else {
            eddy__seterr(errstr, errstr_size,
                         "changelog %s: write of %zu bytes at offset %" PRIu64 ": %s", path,
                         mark_at + MARK_HDR_BYTES + plen, seg->base + seg->size, strerror(e));
        }
        return EDDY_ERR_IO;
    }
    if (do_fdatasync(lc, lc->fd) != 0) {
        int e = errno;
        seg_path(lc, seg->base, path, sizeof(path));
        b->len = mark_at;
        set_failed(lc, "fdatasync failed");
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: fdatasync: %s: commit %" PRIu64
                     " may or may not be durable: close, reopen and replay",
                     path, strerror(e), commit_id);
        return EDDY_ERR_IO;
    }
    seg->size += b->len;
    lc->last_commit_id = commit_id;
    lc->pending_n = 0;
    if (b->cap > PENDING_KEEP_BYTES)
        eddy_buf_free(b);
    b->len = 0;
    if (end_offset)
        *end_offset = seg->base + seg->size;
    return EDDY_OK;
}

/* -------------------------------------------------------------- replay */

/* Sequential reader of one segment file with a read-ahead buffer. */
typedef struct cl_reader_s {
    int fd;
    bool own_fd;
    uint64_t fsize; /* bytes of the segment we may read */
    unsigned char *buf;
    size_t cap;
    uint64_t off; /* buf holds file bytes [off, off + len) */
    size_t len;
} cl_reader_t;

/* Point *out at n bytes at file position pos (pos + n <= fsize); valid
 * until the next call. -1 + errno on a read error, -2 if the file is
 * shorter than its recorded size. */
static int rd_get(cl_reader_t *rd, uint64_t pos, size_t n, const unsigned char **out) {
    if (pos >= rd->off && pos - rd->off + n <= rd->len) {
        *out = rd->buf + (pos - rd->off);
        return 0;
    }
    size_t want = n > READ_CHUNK_BYTES ? n : READ_CHUNK_BYTES;
    if (want > rd->fsize - pos)
        want = (size_t)(rd->fsize - pos);
    if (want > rd->cap) {
        eddy_free(rd->buf);
        rd->buf = eddy_malloc(want);
        rd->cap = want;
    }
    size_t got = 0;
    while (got < want) {
        size_t chunk = want - got < IO_MAX_BYTES ? want - got : IO_MAX_BYTES;
        ssize_t r = pread(rd->fd, rd->buf + got, chunk, (off_t)(pos + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rd->len = 0;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    rd->off = pos;
    rd->len = got;
    if (got < n)
        return -2;
    *out = rd->buf;
    return 0;
}

static bool header_intact(const unsigned char *h) {
    return eddy__get_le32(h) == GRP_MAGIC && eddy__get_le32(h + 20) == eddy__crc32c(0, h, 20);
}

typedef enum {
    GRP_INTACT = 0,  /* whole, CRCs right */
    GRP_DAMAGED = 1, /* torn or corrupt: see why */
    GRP_UNKNOWN = 2, /* intact header of a format version we do not know */
    GRP_READ_ERR = 3 /* errno / short file */
} cl_grp_status_t;

typedef struct cl_group_s {
    bool hdr_ok;
    uint64_t body_len;
    const unsigned char *body; /* GRP_INTACT: borrowed from the reader */
    const char *why;
    unsigned version;
    int read_rc;
} cl_group_t;

static cl_grp_status_t read_group(cl_reader_t *rd, uint64_t fpos, cl_group_t *g) {
    memset(g, 0, sizeof(*g));
    uint64_t left = rd->fsize - fpos;
    const unsigned char *h;
    if (left < GRP_HDR_BYTES) {
        g->why = "incomplete group header";
        return GRP_DAMAGED;
    }
    if ((g->read_rc = rd_get(rd, fpos, GRP_HDR_BYTES, &h)) != 0)
        return GRP_READ_ERR;
    if (!header_intact(h)) {
        g->why = "bad group header";
        return GRP_DAMAGED;
    }
    g->hdr_ok = true;
    g->version = eddy__get_le16(h + 4);
    g->body_len = eddy__get_le64(h + 8);
    uint32_t body_crc = eddy__get_le32(h + 16);
    if (g->version != GRP_VERSION)
        return GRP_UNKNOWN;
    if (g->body_len > left - GRP_HDR_BYTES || g->body_len > SIZE_MAX) {
        g->why = "group runs past the end of the segment";
        return GRP_DAMAGED;
    }
    const unsigned char *body;
    if ((g->read_rc = rd_get(rd, fpos + GRP_HDR_BYTES, (size_t)g->body_len, &body)) != 0)
        return GRP_READ_ERR;
    if (eddy__crc32c(0, body, (size_t)g->body_len) != body_crc) {
        g->why = "bad checksum";
        return GRP_DAMAGED;
    }
    g->body = body;
    return GRP_INTACT;
}

/* Is there an intact group header anywhere in [from, fsize)? 0 or -1/-2. */
static int scan_for_header(cl_reader_t *rd, uint64_t from, bool *found) {
    *found = false;
    unsigned char first = GRP_MAGIC & 0xff;
    for (uint64_t q = from; q + GRP_HDR_BYTES <= rd->fsize;) {
        uint64_t rest = rd->fsize - q;
        size_t len = rest < READ_CHUNK_BYTES ? (size_t)rest : READ_CHUNK_BYTES;
        const unsigned char *p;
        int r = rd_get(rd, q, len, &p);
        if (r != 0)
            return r;
        for (size_t j = 0; j + GRP_HDR_BYTES <= len; j++) {
            const unsigned char *c = memchr(p + j, first, len - GRP_HDR_BYTES + 1 - j);
            if (!c)
                break;
            j = (size_t)(c - p);
            if (header_intact(c)) {
                *found = true;
                return 0;
            }
        }
        q += len - GRP_HDR_BYTES + 1;
    }
    return 0;
}

/* Check the structure of an intact body; NULL or why not. */
static const char *parse_body(const unsigned char *b, uint64_t len, uint64_t *commit_id,
                              const unsigned char **positions, uint32_t *plen) {
    uint64_t p = 0;
    uint32_t n = 0;
    while (p < len) {
        unsigned kind = b[p];
        if (kind >= EDDY_CL_PUT && kind <= EDDY_CL_DEL_RANGE) {
            if (len - p < UPD_HDR_BYTES)
                return "truncated update record";
            uint64_t kl = eddy__get_le32(b + p + 3), vl = eddy__get_le32(b + p + 7);
            if (kl + vl > len - p - UPD_HDR_BYTES)
                return "update record runs past its group";
            p += UPD_HDR_BYTES + kl + vl;
            n++;
        } else if (kind == REC_MARKER) {
            if (len - p < MARK_HDR_BYTES)
                return "truncated commit marker";
            if (eddy__get_le32(b + p + 13) != len - p - MARK_HDR_BYTES)
                return "commit marker is not the last record of its group";
            if (eddy__get_le32(b + p + 9) != n)
                return "commit marker counts a different number of updates";
            *commit_id = eddy__get_le64(b + p + 1);
            *positions = b + p + MARK_HDR_BYTES;
            *plen = eddy__get_le32(b + p + 13);
            return NULL;
        } else {
            return "unknown record type";
        }
    }
    return "group without a commit marker";
}

/* Hand a checked group to the callbacks. */
static eddy_err_t apply_group(const unsigned char *b, uint64_t commit_id,
                              const unsigned char *positions, uint32_t plen,
                              eddy_cl_update_cb_t on_update, eddy_cl_commit_cb_t on_commit,
                              void *opaque) {
    for (uint64_t p = 0; b[p] != REC_MARKER;) {
        uint32_t kl = eddy__get_le32(b + p + 3), vl = eddy__get_le32(b + p + 7);
        const char *key = (const char *)b + p + UPD_HDR_BYTES;
        if (on_update) {
            eddy_err_t rc = on_update(opaque, eddy__get_le16(b + p + 1), (eddy_cl_op_t)b[p], key,
                                      kl, key + kl, vl);
            if (rc != EDDY_OK)
                return rc;
        }
        p += UPD_HDR_BYTES + (uint64_t)kl + vl;
    }
    return on_commit ? on_commit(opaque, commit_id, (const char *)positions, plen) : EDDY_OK;
}

static eddy_err_t read_error(const char *path, int r, char *errstr, size_t errstr_size) {
    if (r == -2)
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: file is shorter than when it was opened (changed by "
                     "someone else?)",
                     path);
    else
        eddy__seterr(errstr, errstr_size, "changelog %s: read: %s", path, strerror(errno));
    return EDDY_ERR_IO;
}

/* Walk group headers from the start of the segment to fpos: replay may
 * only start at a group boundary. */
static eddy_err_t check_boundary(cl_reader_t *rd, const char *path, uint64_t base, uint64_t fpos,
                                 char *errstr, size_t errstr_size) {
    uint64_t p = 0;
    while (p < fpos && rd->fsize - p >= GRP_HDR_BYTES) {
        const unsigned char *h;
        int r = rd_get(rd, p, GRP_HDR_BYTES, &h);
        if (r != 0)
            return read_error(path, r, errstr, errstr_size);
        if (!header_intact(h)) {
            eddy__seterr(errstr, errstr_size,
                         "changelog %s: bad group header at offset %" PRIu64 " (byte %" PRIu64
                         " of the segment), before the replay start offset %" PRIu64,
                         path, base + p, p, base + fpos);
            return EDDY_ERR_IO;
        }
        p += GRP_HDR_BYTES + eddy__get_le64(h + 8);
    }
    if (p != fpos) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: offset %" PRIu64 " is not a commit boundary", path,
                     base + fpos);
        return EDDY_ERR_INVAL;
    }
    return EDDY_OK;
}

/* Cut the log at logical offset cut: later segments are deleted (last
 * first, so a crash leaves a contiguous prefix), the one holding cut is
 * truncated and synced. A failure leaves the handle failed. */
static eddy_err_t cut_log(cl_local_t *lc, uint64_t cut, char *errstr, size_t errstr_size) {
    char path[PATH_MAX];
    bool unlinked = false;
    while (lc->nsegs > 1 && last_seg(lc)->base >= cut) {
        seg_path(lc, last_seg(lc)->base, path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT)
            goto fail;
        lc->nsegs--;
        unlinked = true;
    }
    cl_seg_t *seg = last_seg(lc);
    seg_path(lc, seg->base, path, sizeof(path));
    if (unlinked) {
        close(lc->fd);
        lc->fd = open(path, O_RDWR | O_CLOEXEC);
        if (lc->fd < 0)
            goto fail;
    }
    if (cut < seg->base + seg->size) {
        if (ftruncate(lc->fd, (off_t)(cut - seg->base)) != 0 || do_fdatasync(lc, lc->fd) != 0)
            goto fail;
        seg->size = cut - seg->base;
    }
    if (unlinked && fsync(lc->dirfd) != 0) {
        snprintf(path, sizeof(path), "%s", lc->dir);
        goto fail;
    }
    return EDDY_OK;

fail:
    eddy__seterr(errstr, errstr_size, "changelog %s: truncating the log at offset %" PRIu64 ": %s",
                 path, cut, strerror(errno));
    set_failed(lc, "truncation failed");
    return EDDY_ERR_IO;
}

static eddy_err_t local_replay(eddy_changelog_t *cl, uint64_t from_offset, uint64_t upto,
                               eddy_cl_update_cb_t on_update, eddy_cl_commit_cb_t on_commit,
                               void *opaque, uint64_t *last_commit_id, uint64_t *end_offset,
                               char *errstr, size_t errstr_size) {
    cl_local_t *lc = (cl_local_t *)cl;
    if (lc->failed) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: an earlier write failed (%s): close, reopen and replay",
                     lc->dir, lc->failed_why);
        return EDDY_ERR_STATE;
    }
    if (lc->pending.len) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: uncommitted updates are buffered: replay before appending",
                     lc->dir);
        return EDDY_ERR_STATE;
    }
    uint64_t start = lc->segs[0].base, end = log_end(lc);
    if (from_offset < start) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: offset %" PRIu64
                     " was dropped by truncate_before (first retained offset %" PRIu64 ")",
                     lc->dir, from_offset, start);
        return EDDY_ERR_NOENT;
    }
    if (from_offset > end) {
        eddy__seterr(errstr, errstr_size,
                     "changelog %s: offset %" PRIu64 " is past the end of the log (%" PRIu64
                     "): segments are missing",
                     lc->dir, from_offset, end);
        return EDDY_ERR_IO;
    }
    int first = lc->nsegs - 1;
    while (lc->segs[first].base > from_offset)
        first--;

    char path[PATH_MAX];
    cl_reader_t rd = {.fd = -1};
    uint64_t last = 0, cut = UINT64_MAX;
    eddy_err_t rc = EDDY_OK;
    for (int i = first; i < lc->nsegs && cut == UINT64_MAX && rc == EDDY_OK; i++) {
        const cl_seg_t seg = lc->segs[i];
        const bool is_last = i == lc->nsegs - 1;
        seg_path(lc, seg.base, path, sizeof(path));
        rd.fd = is_last ? lc->fd : open(path, O_RDONLY | O_CLOEXEC);
        rd.own_fd = !is_last;
        rd.fsize = seg.size;
        rd.off = rd.len = 0;
        if (rd.fd < 0) {
            eddy__seterr(errstr, errstr_size, "changelog %s: open: %s", path, strerror(errno));
            rc = EDDY_ERR_IO;
            break;
        }
        uint64_t fpos = i == first ? from_offset - seg.base : 0;
        if (fpos > 0)
            rc = check_boundary(&rd, path, seg.base, fpos, errstr, errstr_size);
        while (rc == EDDY_OK && fpos < seg.size) {
            cl_group_t g;
            cl_grp_status_t st = read_group(&rd, fpos, &g);
            if (st == GRP_READ_ERR) {
                rc = read_error(path, g.read_rc, errstr, errstr_size);
                break;
            }
            if (st == GRP_UNKNOWN) {
                eddy__seterr(errstr, errstr_size,
                             "changelog %s: group of format version %u at offset %" PRIu64
                             " (byte %" PRIu64 " of the segment): this build reads version %d",
                             path, g.version, seg.base + fpos, fpos, GRP_VERSION);
                rc = EDDY_ERR_IO;
                break;
            }
            if (st == GRP_DAMAGED) {
                bool tail = false;
                if (is_last && g.hdr_ok) {
                    tail = g.body_len >= seg.size - fpos - GRP_HDR_BYTES;
                } else if (is_last) {
                    bool found;
                    int r = scan_for_header(&rd, fpos + 1, &found);
                    if (r != 0) {
                        rc = read_error(path, r, errstr, errstr_size);
                        break;
                    }
                    tail = !found;
                }
                if (tail) {
                    cut = seg.base + fpos;
                } else {
                    eddy__seterr(errstr, errstr_size,
                                 "changelog %s: %s at offset %" PRIu64 " (byte %" PRIu64
                                 " of the segment, not the tail): %s",
                                 path, g.why, seg.base + fpos, fpos,
                                 is_last ? "valid data follows" : "a later segment follows");
                    rc = EDDY_ERR_IO;
                }
                break;
            }
            uint64_t commit_id = 0;
            const unsigned char *positions = NULL;
            uint32_t plen = 0;
            const char *bad = parse_body(g.body, g.body_len, &commit_id, &positions, &plen);
            if (!bad && last && commit_id <= last)
                bad = "commit id not above the previous one";
            if (bad) {
                eddy__seterr(errstr, errstr_size,
                             "changelog %s: %s at offset %" PRIu64 " (byte %" PRIu64
                             " of the segment)",
                             path, bad, seg.base + fpos, fpos);
                rc = EDDY_ERR_IO;
                break;
            }
            if (commit_id > upto) {
                cut = seg.base + fpos;
                break;
            }
            rc = apply_group(g.body, commit_id, positions, plen, on_update, on_commit, opaque);
            if (rc != EDDY_OK) {
                eddy__seterr(errstr, errstr_size,
                             "changelog %s: replay stopped at commit %" PRIu64 " (offset %" PRIu64
                             "): callback failed: %s",
                             path, commit_id, seg.base + fpos, eddy_err2str(rc));
                break;
            }
            last = commit_id;
            fpos += GRP_HDR_BYTES + g.body_len;
        }
        if (rd.own_fd)
            close(rd.fd);
    }
    eddy_free(rd.buf);
    if (rc == EDDY_OK && cut != UINT64_MAX)
        rc = cut_log(lc, cut, errstr, errstr_size);
    if (rc != EDDY_OK) {
        /* Writing after a log we could not read would bury the problem. */
        lc->need_replay = log_end(lc) > lc->segs[0].base;
        return rc;
    }
    lc->need_replay = false;
    lc->last_commit_id = last;
    if (last_commit_id)
        *last_commit_id = last;
    if (end_offset)
        *end_offset = log_end(lc);
    return EDDY_OK;
}

/* ----------------------------------------------------------- retention */

static eddy_err_t local_truncate_before(eddy_changelog_t *cl, uint64_t offset, char *errstr,
                                        size_t errstr_size) {
    cl_local_t *lc = (cl_local_t *)cl;
    int drop = 0;
    while (drop + 1 < lc->nsegs && lc->segs[drop + 1].base <= offset)
        drop++;
    eddy_err_t rc = EDDY_OK;
    int done = 0;
    /* Oldest first, so a crash leaves a contiguous suffix. */
    for (; done < drop; done++) {
        char path[PATH_MAX];
        seg_path(lc, lc->segs[done].base, path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT) {
            eddy__seterr(errstr, errstr_size, "changelog %s: unlink: %s", path, strerror(errno));
            rc = EDDY_ERR_IO;
            break;
        }
    }
    if (done) {
        memmove(lc->segs, lc->segs + done, (size_t)(lc->nsegs - done) * sizeof(*lc->segs));
        lc->nsegs -= done;
        if (fsync(lc->dirfd) != 0 && rc == EDDY_OK) {
            eddy__seterr(errstr, errstr_size, "changelog %s: fsync of directory: %s", lc->dir,
                         strerror(errno));
            rc = EDDY_ERR_IO;
        }
    }
    return rc;
}

static uint64_t local_end_offset(eddy_changelog_t *cl) {
    return log_end((cl_local_t *)cl);
}

static uint64_t local_start_offset(eddy_changelog_t *cl) {
    return ((cl_local_t *)cl)->segs[0].base;
}

static void local_close(eddy_changelog_t *cl) {
    cl_local_t *lc = (cl_local_t *)cl;
    if (lc->fd >= 0)
        close(lc->fd);
    if (lc->dirfd >= 0)
        close(lc->dirfd); /* releases the flock */
    eddy_buf_free(&lc->pending);
    eddy_free(lc->segs);
    eddy_free(lc->dir);
    eddy_free(lc);
}

static const eddy_changelog_ops_t local_ops = {
    .name = "local",
    .append = local_append,
    .commit = local_commit,
    .replay = local_replay,
    .truncate_before = local_truncate_before,
    .end_offset = local_end_offset,
    .start_offset = local_start_offset,
    .close = local_close,
};

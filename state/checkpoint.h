/*
 * Task checkpoint files and the CRC-32C shared by the state folder.
 *
 * A checkpoint says "the task's stores are consistent with changelog
 * offset X, commit Y, snapshot Z". It is replaced atomically (tmp file,
 * fsync, rename, fsync of the directory), so a reader sees either the old
 * or the new checkpoint, never a mix. A file that does not decode (bad
 * magic, wrong length, bad CRC) is reported as EDDY_ERR_DECODE: the caller
 * treats it as missing and rebuilds from the changelog, never trusts it.
 */
#ifndef EDDY_STATE_CHECKPOINT_H
#define EDDY_STATE_CHECKPOINT_H

#include "eddy.h"

#include <stddef.h>
#include <stdint.h>

typedef struct eddy_ckpt_s {
    uint64_t commit_id;        /**< last commit covered by the checkpoint */
    uint64_t changelog_offset; /**< replay the changelog from here */
    uint64_t snapshot_id;      /**< local store snapshot, 0 = none */
    uint64_t created_ms;       /**< wall clock when written */
} eddy_ckpt_t;

/** Size in bytes of a version-1 checkpoint file. */
#define EDDY_CKPT_FILE_BYTES 52

/**
 * @brief Write a checkpoint atomically: `<path>.tmp` is written and
 *        fsynced, renamed over path, then the directory is fsynced.
 * @returns EDDY_OK, or EDDY_ERR_IO with the path and strerror in errstr.
 *          On error the previous file at path (if any) is left intact and
 *          no tmp file is left behind, except when only the final fsync of
 *          the directory fails: the new checkpoint is then in place but
 *          may not survive a crash.
 * @remark Thread: any; one writer per path at a time.
 */
eddy_err_t eddy__ckpt_write(const char *path, const eddy_ckpt_t *c, char *errstr,
                            size_t errstr_size);

/**
 * @brief Read a checkpoint.
 * @returns EDDY_OK; EDDY_ERR_NOENT when path does not exist;
 *          EDDY_ERR_DECODE when the file is corrupt (short, long, bad
 *          magic, unknown version, bad CRC): treat it as missing;
 *          EDDY_ERR_IO for other read errors. errstr names the path and why.
 *          *c is written only on EDDY_OK.
 */
eddy_err_t eddy__ckpt_read(const char *path, eddy_ckpt_t *c, char *errstr, size_t errstr_size);

/**
 * @brief CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 * @param crc 0 to start, or the result of the previous call to continue.
 * @returns e.g. eddy__crc32c(0, "123456789", 9) == 0xE3069283.
 * @remark Uses the SSE4.2 crc32 instruction when the CPU has it, else a
 *         slicing-by-8 table. Thread: any.
 */
uint32_t eddy__crc32c(uint32_t crc, const void *data, size_t len);

/** @brief The portable table implementation of eddy__crc32c (for tests). */
uint32_t eddy__crc32c_sw(uint32_t crc, const void *data, size_t len);

/* Little-endian fixed-width integers of the state file formats. */
static inline void eddy__put_le16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void eddy__put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void eddy__put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t eddy__get_le16(const unsigned char *p) {
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}
static inline uint32_t eddy__get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t eddy__get_le64(const unsigned char *p) {
    return (uint64_t)eddy__get_le32(p) | (uint64_t)eddy__get_le32(p + 4) << 32;
}

#endif /* EDDY_STATE_CHECKPOINT_H */

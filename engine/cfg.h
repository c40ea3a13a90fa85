/*
 * Reading a topology: the YAML loader that turns text into a configuration
 * node tree (engine/yaml_load.c), and the typed getters the topology
 * compiler uses to read options from that tree (engine/cfg.c).
 *
 * Every error is written as "FILE:LINE:COL: message" (through
 * eddy__cnode_err for nodes of a tree) and returned as EDDY_ERR_CONFIG, so
 * a user can jump straight to the offending text.
 *
 * Getter conventions:
 *  - Map getters look `key` up in `map`. A key that is absent, or whose
 *    value is a YAML null (plain "", "~", "null", "Null", "NULL"), counts
 *    as not present: with required=false they return EDDY_OK and leave
 *    *out untouched (the caller pre-sets the default); with required=true
 *    they fail ("missing required key 'type'" at the map, or
 *    "key 'type' needs a value" at the key).
 *  - A value of the wrong kind fails at the value's position:
 *    "key 'size': expected a duration like 10s or 500ms, got a mapping".
 *  - Node getters (eddy__cfg_node_*) read one value, e.g. a sequence item;
 *    `what` starts their messages ("partitions[2]: expected an integer,
 *    got 'x'"). A null there is an error ("got null").
 *  - Quoting does not matter for numbers, booleans, durations and sizes
 *    ("4" and 4 are both the integer 4); it only decides whether "null"
 *    or "" is a null or a string.
 *
 * Thread: all functions are thread-agnostic; they only read the tree.
 */
#ifndef EDDY_CFG_H
#define EDDY_CFG_H

#include "eddy_int.h"

/** Most levels of nested mappings/sequences the loader accepts. */
#define EDDY_YAML_MAX_DEPTH 64
/** Most nodes (keys included) a document may have once aliases are
 *  expanded: the bound against "billion laughs". */
#define EDDY_YAML_MAX_NODES 1000000
/** Most scalar bytes that alias expansion may copy, for the same reason
 *  (one long string aliased many times). */
#define EDDY_YAML_MAX_ALIAS_BYTES (64u * 1024 * 1024)

/**
 * @brief Parse one YAML document into a configuration node tree.
 * @param text YAML text, len bytes (need not be NUL-terminated; NULL with
 *        len 0 is an empty document).
 * @param file name used in messages and stored in every node's `file`;
 *        borrowed: it must outlive the returned tree. May be NULL
 *        ("<input>" in messages).
 * @returns the root mapping (free with eddy__cnode_free()), or NULL with
 *          "FILE:LINE:COL: message" in errstr.
 * @remark Positions are 1-based lines and columns (columns count
 *         characters, not bytes). A scalar's `quoted` is true when it was
 *         not plain (single/double quoted, a | or > block scalar, or tagged
 *         !!str): YAML makes such a scalar a string, never a null, boolean
 *         or number. An alias (*name) becomes a deep copy of the anchored
 *         node; the copy's root carries the alias's position, its inner
 *         nodes the positions where they are written. Merge keys (<<),
 *         tags outside the YAML core schema, duplicate keys, non-scalar
 *         keys, NUL characters in scalars, several documents and an empty
 *         document are errors. Never crashes on any input.
 */
eddy_cnode_t *eddy__yaml_load(const char *text, size_t len, const char *file, char *errstr,
                              size_t errstr_size);

/** @brief True for NULL and for a plain "", "~", "null", "Null" or "NULL". */
bool eddy__cfg_is_null(const eddy_cnode_t *node);

/**
 * @brief Check that every key of map is in allowed (NULL-terminated).
 * @param what names the map in the message, e.g. "source 'clicks'".
 * @returns EDDY_ERR_CONFIG at the unknown key's position:
 *   "unknown key 'windw' in step (did you mean 'window'?; expected one of:
 *   window, emit)"; or at map when it is not a mapping. A NULL map is OK.
 */
eddy_err_t eddy__cfg_check_keys(const eddy_cnode_t *map, const char *what,
                                const char *const *allowed, char *errstr, size_t n);

/** @brief A scalar's text (borrowed from the tree), e.g. "name". Numbers and
 *         booleans are returned as written. */
eddy_err_t eddy__cfg_str(const eddy_cnode_t *map, const char *key, bool required, const char **out,
                         char *errstr, size_t n);
/** @brief A decimal integer ("-12", "4", "\"4\"") in [min, max]. A bound of
 *         INT64_MIN/INT64_MAX means no bound on that side.
 *         "key 'threads': 0 is out of range [1, 1024]". */
eddy_err_t eddy__cfg_int(const eddy_cnode_t *map, const char *key, bool required, int64_t min,
                         int64_t max, int64_t *out, char *errstr, size_t n);
/** @brief A decimal number ("0.5", "-1e3", "7") in [min, max]; no nan/inf. */
eddy_err_t eddy__cfg_double(const eddy_cnode_t *map, const char *key, bool required, double min,
                            double max, double *out, char *errstr, size_t n);
/** @brief true/false, yes/no, on/off (any case). */
eddy_err_t eddy__cfg_bool(const eddy_cnode_t *map, const char *key, bool required, bool *out,
                          char *errstr, size_t n);
/** @brief A duration ("10s", "500ms", "1.5h", bare ms, "0"), as ms >= 0. */
eddy_err_t eddy__cfg_duration(const eddy_cnode_t *map, const char *key, bool required,
                              int64_t *out_ms, char *errstr, size_t n);

/** A window map's `advance` (ms): required, > 0, at most size and dividing
 *  it when hopping; when not hopping, the window's size, and an `advance`
 *  key is an error. Errors name the key's file:line:col. */
eddy_err_t eddy__cfg_window_advance(const eddy_cnode_t *win, bool hopping, int64_t size,
                                    int64_t *advance, char *errstr, size_t n);
/** @brief A size ("64MiB", "512k", "1GB", bare bytes), as bytes >= 0. */
eddy_err_t eddy__cfg_bytes(const eddy_cnode_t *map, const char *key, bool required, int64_t *out,
                           char *errstr, size_t n);
/** @brief One of choices (NULL-terminated, exact match); *out_index is its
 *         index. "key 'emit': expected one of final, update; got 'finale'". */
eddy_err_t eddy__cfg_enum(const eddy_cnode_t *map, const char *key, bool required,
                          const char *const *choices, int *out_index, char *errstr, size_t n);
/** @brief A nested mapping (borrowed from the tree). */
eddy_err_t eddy__cfg_map(const eddy_cnode_t *map, const char *key, bool required,
                         eddy_cnode_t **out, char *errstr, size_t n);
/** @brief A nested sequence (borrowed from the tree). */
eddy_err_t eddy__cfg_seq(const eddy_cnode_t *map, const char *key, bool required,
                         eddy_cnode_t **out, char *errstr, size_t n);

/* One value (a sequence item, a step argument); same rules as above, with
 * `what` starting the message. */
eddy_err_t eddy__cfg_node_str(const eddy_cnode_t *node, const char *what, const char **out,
                              char *errstr, size_t n);
eddy_err_t eddy__cfg_node_int(const eddy_cnode_t *node, const char *what, int64_t min, int64_t max,
                              int64_t *out, char *errstr, size_t n);
eddy_err_t eddy__cfg_node_double(const eddy_cnode_t *node, const char *what, double min, double max,
                                 double *out, char *errstr, size_t n);
eddy_err_t eddy__cfg_node_bool(const eddy_cnode_t *node, const char *what, bool *out, char *errstr,
                               size_t n);
eddy_err_t eddy__cfg_node_duration(const eddy_cnode_t *node, const char *what, int64_t *out_ms,
                                   char *errstr, size_t n);
eddy_err_t eddy__cfg_node_bytes(const eddy_cnode_t *node, const char *what, int64_t *out,
                                char *errstr, size_t n);
eddy_err_t eddy__cfg_node_enum(const eddy_cnode_t *node, const char *what,
                               const char *const *choices, int *out_index, char *errstr, size_t n);

/**
 * @brief Did-you-mean: the candidate closest to word by edit distance
 *        (insert, delete, substitute, swap two neighbours), if that
 *        distance is at most max(2, strlen(word)/3) and smaller than
 *        strlen(word); ties go to the earliest candidate.
 * @returns a borrowed candidate, or NULL.
 */
const char *eddy__cfg_suggest(const char *word, const char *const *candidates);

#endif /* EDDY_CFG_H */

/*
 * The YAML loader (engine/yaml_load.c) and the typed config getters
 * (engine/cfg.c): positions, quoting, every error a user can meet with the
 * exact text they will read, and hostile inputs that must end in a clean
 * error rather than a crash, a hang or a leak.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "cfg.h"

#define FILE_NAME "t.yaml"

static eddy_cnode_t *load(const char *yaml) {
    char err[512] = "";
    eddy_cnode_t *root = eddy__yaml_load(yaml, strlen(yaml), FILE_NAME, err, sizeof(err));
    if (!root)
        fail_msg("load failed: %s", err);
    return root;
}

/* Loading must fail with exactly `expect`. */
static void load_fails_with(const char *yaml, size_t len, const char *expect) {
    char err[512] = "";
    eddy_cnode_t *root = eddy__yaml_load(yaml, len, FILE_NAME, err, sizeof(err));
    if (root) {
        eddy__cnode_free(root);
        fail_msg("loaded, expected error: %s", expect);
    }
    assert_string_equal(err, expect);
}

/* Walk a path like "sources/0/options/topic" (numbers index sequences). */
static eddy_cnode_t *at(eddy_cnode_t *n, const char *path) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok && n;
         tok = strtok_r(NULL, "/", &save)) {
        if (n->kind == EDDY_CNODE_SEQ) {
            int i = atoi(tok);
            n = i < n->n ? n->items[i] : NULL;
        } else {
            n = eddy__cnode_get(n, tok);
        }
    }
    if (!n)
        fail_msg("no node at %s", path);
    return n;
}

static void assert_pos(const eddy_cnode_t *n, int line, int col) {
    if (n->line != line || n->col != col)
        fail_msg("node at %d:%d, expected %d:%d", n->line, n->col, line, col);
}

/* ------------------------------------------------------------- positions */

static void block_style_nodes_carry_exact_line_and_col(void **state) {
    (void)state;
    eddy_cnode_t *root = load("name: app\n"
                              "sources:\n"
                              "  - name: clicks\n"
                              "    type: kafka\n"
                              "    options:\n"
                              "      topic: \"raw\"\n");
    assert_int_equal(root->kind, EDDY_CNODE_MAP);
    assert_pos(root, 1, 1);
    assert_pos(at(root, "name"), 1, 7);
    assert_pos(root->key_nodes[1], 2, 1); /* "sources" */
    assert_pos(at(root, "sources"), 3, 3);
    assert_pos(at(root, "sources/0"), 3, 5);
    assert_pos(at(root, "sources/0/name"), 3, 11);
    assert_pos(at(root, "sources/0/type"), 4, 11);
    eddy_cnode_t *opts = at(root, "sources/0/options");
    assert_pos(opts, 6, 7);
    assert_pos(opts->key_nodes[0], 6, 7);
    assert_pos(at(root, "sources/0/options/topic"), 6, 14);
    assert_string_equal(at(root, "sources/0/options/topic")->scalar, "raw");
    assert_ptr_equal(root->file, FILE_NAME);
    assert_ptr_equal(at(root, "sources/0/options/topic")->file, FILE_NAME);
    eddy__cnode_free(root);
}

static void flow_style_nodes_carry_exact_line_and_col(void **state) {
    (void)state;
    eddy_cnode_t *root = load("# comment\n"
                              "root: {a: [10, {b: x}], c: 'y'}\n");
    assert_pos(root, 2, 1);
    eddy_cnode_t *r = at(root, "root");
    assert_pos(r, 2, 7);
    assert_pos(r->key_nodes[0], 2, 8); /* a */
    assert_pos(at(root, "root/a"), 2, 11);
    assert_pos(at(root, "root/a/0"), 2, 12);
    assert_pos(at(root, "root/a/1"), 2, 16);
    assert_pos(at(root, "root/a/1/b"), 2, 20);
    assert_pos(r->key_nodes[1], 2, 25); /* c */
    assert_pos(at(root, "root/c"), 2, 28);
    assert_string_equal(at(root, "root/a/1/b")->scalar, "x");
    eddy__cnode_free(root);
}

static void columns_count_characters_not_utf8_bytes(void **state) {
    (void)state;
    eddy_cnode_t *root = load("\"\xc3\xa4\xc3\xb6\": x\n");
    assert_pos(at(root, "\xc3\xa4\xc3\xb6"), 1, 7);
    eddy__cnode_free(root);
}

static void scalars_record_whether_they_were_quoted(void **state) {
    (void)state;
    eddy_cnode_t *root = load("a: \"x\"\n"
                              "b: 'y'\n"
                              "c: z\n"
                              "d: |\n"
                              "  text\n"
                              "e: !!str 5\n"
                              "f: \"null\"\n"
                              "g: null\n"
                              "h:\n");
    assert_true(at(root, "a")->quoted);
    assert_true(at(root, "b")->quoted);
    assert_false(at(root, "c")->quoted);
    assert_true(at(root, "d")->quoted);
    assert_string_equal(at(root, "d")->scalar, "text\n");
    assert_true(at(root, "e")->quoted);
    assert_true(at(root, "f")->quoted);
    assert_false(eddy__cfg_is_null(at(root, "f")));
    assert_false(at(root, "g")->quoted);
    assert_true(eddy__cfg_is_null(at(root, "g")));
    assert_string_equal(at(root, "h")->scalar, "");
    assert_true(eddy__cfg_is_null(at(root, "h")));
    eddy__cnode_free(root);
}

static void sequence_of_maps_loads_in_file_order(void **state) {
    (void)state;
    eddy_cnode_t *root = load("steps:\n"
                              "  - filter: a > 1\n"
                              "  - map: {x: y}\n"
                              "  - window: 10s\n"
                              "    emit: final\n");
    eddy_cnode_t *steps = at(root, "steps");
    assert_int_equal(steps->kind, EDDY_CNODE_SEQ);
    assert_int_equal(steps->n, 3);
    assert_string_equal(steps->items[0]->keys[0], "filter");
    assert_string_equal(at(root, "steps/0/filter")->scalar, "a > 1");
    assert_string_equal(steps->items[1]->keys[0], "map");
    assert_string_equal(steps->items[2]->keys[0], "window");
    assert_string_equal(steps->items[2]->keys[1], "emit");
    assert_pos(steps->items[2], 4, 5);
    eddy__cnode_free(root);
}

/* ------------------------------------------------------------- load errors */

static void syntax_error_names_file_line_and_col(void **state) {
    (void)state;
    const char *y = "a: 1\n"
                    "b: [1, 2\n"
                    "c: 3\n";
    load_fails_with(y, strlen(y),
                    "t.yaml:3:2: did not find expected ',' or ']' "
                    "(while parsing a flow sequence at 2:4)");
    const char *y2 = "a: 1\n"
                     " b: 2\n";
    load_fails_with(y2, strlen(y2), "t.yaml:2:3: mapping values are not allowed in this context");
}

static void duplicate_key_error_gives_both_positions(void **state) {
    (void)state;
    const char *y = "name: a\n"
                    "opts:\n"
                    "  k: 1\n"
                    "  other: 2\n"
                    "  k: 3\n";
    load_fails_with(y, strlen(y), "t.yaml:5:3: duplicate key 'k' (first at 3:3)");
}

static void duplicate_key_is_found_in_a_long_flow_mapping(void **state) {
    (void)state;
    /* 20000 keys: past the size where the loader switches to a hash index */
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "m: {");
    for (int i = 0; i < 20000; i++)
        eddy_buf_printf(&b, "k%d: %d, ", i, i);
    size_t col = b.len + 1;
    eddy_buf_printf(&b, "k777: 1}\n");
    char expect[128];
    const char *first = strstr(b.p, "k777:");
    snprintf(expect, sizeof(expect), "t.yaml:1:%zu: duplicate key 'k777' (first at 1:%d)", col,
             (int)(first - b.p) + 1);
    load_fails_with(b.p, b.len, expect);
    eddy_buf_free(&b);
}

static void non_scalar_key_is_rejected(void **state) {
    (void)state;
    const char *y = "a: 1\n"
                    "? [x, y]\n"
                    ": 2\n";
    load_fails_with(y, strlen(y), "t.yaml:2:3: a mapping key must be a scalar, not a sequence");
    const char *y2 = "{a: 1, {b: 2}: 3}";
    load_fails_with(y2, strlen(y2), "t.yaml:1:8: a mapping key must be a scalar, not a mapping");
}

static void second_document_is_rejected(void **state) {
    (void)state;
    const char *y = "a: 1\n"
                    "---\n"
                    "b: 2\n";
    load_fails_with(y, strlen(y),
                    "t.yaml:2:1: a topology is one YAML document; found a second one");
}

static void empty_document_is_rejected(void **state) {
    (void)state;
    const char *expect = "t.yaml:1:1: the document is empty; a topology must be a mapping";
    load_fails_with("", 0, expect);
    load_fails_with(NULL, 0, expect);
    load_fails_with("# only a comment\n\n", 18, expect);
    load_fails_with("---\n", 4, expect);
}

static void root_that_is_not_a_mapping_is_rejected(void **state) {
    (void)state;
    load_fails_with("- a\n- b\n", 8, "t.yaml:1:1: a topology must be a mapping");
    load_fails_with("just text", 9, "t.yaml:1:1: a topology must be a mapping");
    load_fails_with("\n\n~\n", 4, "t.yaml:3:1: a topology must be a mapping");
}

static void merge_key_is_rejected_with_a_reason(void **state) {
    (void)state;
    const char *y = "base: &b {x: 1}\n"
                    "w:\n"
                    "  <<: *b\n";
    load_fails_with(y, strlen(y),
                    "t.yaml:3:3: merge keys ('<<') are not supported; write the keys out, or "
                    "alias the whole mapping");
    /* quoted, "<<" is just a key */
    eddy_cnode_t *root = load("\"<<\": 1\n");
    assert_string_equal(root->keys[0], "<<");
    eddy__cnode_free(root);
}

static void unknown_and_recursive_aliases_are_rejected(void **state) {
    (void)state;
    const char *y = "a: 1\n"
                    "b: *nope\n";
    load_fails_with(y, strlen(y), "t.yaml:2:4: unknown alias '*nope'");
    const char *y2 = "a: &x [1, *x]\n";
    load_fails_with(y2, strlen(y2), "t.yaml:1:11: alias '*x' is inside the node it refers to");
}

static void local_tags_are_rejected(void **state) {
    (void)state;
    const char *y = "a: !secret abc\n";
    load_fails_with(y, strlen(y), "t.yaml:1:4: unsupported tag '!secret'");
}

static void nul_character_in_a_scalar_is_rejected(void **state) {
    (void)state;
    const char *y = "name: \"ab\\0cd\"\n";
    load_fails_with(y, strlen(y), "t.yaml:1:7: a scalar contains a NUL character");
}

/* ---------------------------------------------------------------- aliases */

static void alias_is_a_deep_copy_positioned_at_the_alias(void **state) {
    (void)state;
    eddy_cnode_t *root = load("defaults: &d\n"
                              "  size: 10s\n"
                              "  tags: [a, b]\n"
                              "w1: *d\n"
                              "w2:   *d\n"
                              "k: &s hello\n"
                              "*s : 2\n");
    eddy_cnode_t *d = at(root, "defaults"), *w1 = at(root, "w1"), *w2 = at(root, "w2");
    assert_int_equal(w1->kind, EDDY_CNODE_MAP);
    assert_true(w1 != d && w2 != d && w1 != w2);
    assert_true(at(w1, "tags") != at(d, "tags"));
    assert_true(at(w1, "size")->scalar != at(d, "size")->scalar);
    assert_string_equal(at(w2, "size")->scalar, "10s");
    assert_string_equal(at(w2, "tags/1")->scalar, "b");
    assert_pos(w1, 4, 5);
    assert_pos(w2, 5, 7);
    assert_pos(at(w1, "size"), 2, 9); /* inner nodes: where the text is */
    /* an aliased scalar as a key */
    assert_string_equal(root->keys[4], "hello");
    assert_pos(root->key_nodes[4], 7, 1);
    eddy__cnode_free(root);
}

static void redefined_anchor_resolves_to_its_latest_definition(void **state) {
    (void)state;
    /* both below and above the size where anchors get a hash index */
    for (int extra = 0; extra <= 40; extra += 40) {
        eddy_buf_t b = {0};
        eddy_buf_printf(&b, "a: &x first\n");
        for (int i = 0; i < extra; i++)
            eddy_buf_printf(&b, "f%d: &y%d v\n", i, i);
        eddy_buf_printf(&b, "b: *x\nc: &x second\nd: *x\n");
        eddy_buf_putc(&b, 0);
        eddy_cnode_t *root = load(b.p);
        assert_string_equal(at(root, "b")->scalar, "first");
        assert_string_equal(at(root, "d")->scalar, "second");
        eddy__cnode_free(root);
        eddy_buf_free(&b);
    }
}

static void many_anchors_and_aliases_load_quickly(void **state) {
    (void)state;
    /* 100k anchors, then 100k aliases to the first: a linear anchor search
     * would make this 10^10 string compares */
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "a: [");
    for (int i = 0; i < 100000; i++)
        eddy_buf_printf(&b, "&a%d %d, ", i, i);
    eddy_buf_printf(&b, "]\nb: [");
    for (int i = 0; i < 100000; i++)
        eddy_buf_printf(&b, "*a0, ");
    eddy_buf_printf(&b, "]\n");
    int64_t t0 = eddy__now_ns();
    char err[512] = "";
    eddy_cnode_t *root = eddy__yaml_load(b.p, b.len, FILE_NAME, err, sizeof(err));
    int64_t took_ms = (eddy__now_ns() - t0) / 1000000;
    assert_non_null(root);
    assert_int_equal(at(root, "b")->n, 100000);
    assert_string_equal(at(root, "b/99999")->scalar, "0");
    assert_true(took_ms < 20000);
    eddy__cnode_free(root);
    eddy_buf_free(&b);
}

static void alias_bomb_is_rejected(void **state) {
    (void)state;
    /* 9 levels of 9 aliases each: 9^9 (387 million) nodes if expanded */
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i <= 9; i++) {
        eddy_buf_printf(&b, "a%d: &a%d [", i, i);
        for (int j = 0; j < 9; j++)
            eddy_buf_printf(&b, "%s*a%d", j ? ", " : "", i - 1);
        eddy_buf_printf(&b, "]\n");
    }
    eddy_buf_putc(&b, 0);
    /* a5 is 597871 nodes and a0..a5 already hold 672k: the first copy of
     * a5 would pass a million */
    load_fails_with(b.p, strlen(b.p),
                    "t.yaml:7:10: alias '*a5' expands the document beyond 1000000 nodes or "
                    "67108864 bytes of copies (nested aliases?)");
    eddy_buf_free(&b);
}

static void alias_of_a_long_string_repeated_is_rejected(void **state) {
    (void)state;
    /* few nodes, but each copy of a 1 MiB string costs 1 MiB */
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "s: &s \"");
    for (int i = 0; i < 1024 * 1024; i++)
        eddy_buf_putc(&b, 'x');
    eddy_buf_printf(&b, "\"\nl: [");
    for (int i = 0; i < 100; i++)
        eddy_buf_printf(&b, "*s, ");
    eddy_buf_printf(&b, "]\n");
    char err[512] = "";
    assert_null(eddy__yaml_load(b.p, b.len, FILE_NAME, err, sizeof(err)));
    /* the 64th copy crosses 64 MiB: "l: [" is 4 chars, each "*s, " 4 more */
    assert_string_equal(err, "t.yaml:2:257: alias '*s' expands the document beyond 1000000 "
                             "nodes or 67108864 bytes of copies (nested aliases?)");
    eddy_buf_free(&b);
}

/* ------------------------------------------------------------------ depth */

static char *nested(int levels) {
    /* "a: [[[ ... ]]]" with `levels` brackets: the root map is level 1 */
    char *s = eddy_malloc(16 + 2 * (size_t)levels);
    size_t o = 0;
    memcpy(s, "a: ", 3);
    o = 3;
    for (int i = 0; i < levels; i++)
        s[o++] = '[';
    for (int i = 0; i < levels; i++)
        s[o++] = ']';
    s[o] = 0;
    return s;
}

static void nesting_up_to_the_depth_limit_loads_and_one_more_fails(void **state) {
    (void)state;
    char *ok = nested(EDDY_YAML_MAX_DEPTH - 1);
    eddy_cnode_t *root = load(ok);
    int depth = 1;
    for (eddy_cnode_t *n = at(root, "a"); n->n; n = n->items[0])
        depth++;
    assert_int_equal(depth + 1, EDDY_YAML_MAX_DEPTH); /* innermost empty seq */
    eddy__cnode_free(root);
    eddy_free(ok);

    char *deep = nested(EDDY_YAML_MAX_DEPTH);
    load_fails_with(deep, strlen(deep),
                    "t.yaml:1:67: mappings and sequences nest deeper than 64 levels");
    eddy_free(deep);
}

static void alias_that_would_nest_too_deep_is_rejected(void **state) {
    (void)state;
    /* the anchored value is 40 levels deep, used again 40 levels down */
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "x: &deep ");
    for (int i = 0; i < 40; i++)
        eddy_buf_putc(&b, '[');
    for (int i = 0; i < 40; i++)
        eddy_buf_putc(&b, ']');
    eddy_buf_printf(&b, "\ny: ");
    for (int i = 0; i < 40; i++)
        eddy_buf_putc(&b, '[');
    eddy_buf_printf(&b, "*deep");
    for (int i = 0; i < 40; i++)
        eddy_buf_putc(&b, ']');
    eddy_buf_putc(&b, '\n');
    load_fails_with(b.p, b.len, "t.yaml:2:44: alias '*deep' nests deeper than 64 levels");
    eddy_buf_free(&b);
}

/* ------------------------------------------------------------ hostile input */

static void binary_garbage_fails_cleanly(void **state) {
    (void)state;
    static const char bin[] = "\x7f"
                              "ELF\x02\x01\x01\x00\x00\x00\x00\x00";
    load_fails_with(bin, sizeof(bin) - 1,
                    "t.yaml:1:1: control characters are not allowed (byte 0x7f)");
    load_fails_with("a: \xff\xfe\n", 6, "t.yaml:1:4: invalid leading UTF-8 octet (byte 0xff)");

    /* Random bytes: whatever happens, a clean message or a mapping. */
    unsigned seed = 12345;
    char buf[256];
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rand_r(&seed) & 0xff);
        char err[512] = "";
        eddy_cnode_t *root = eddy__yaml_load(buf, len, FILE_NAME, err, sizeof(err));
        if (root) {
            assert_int_equal(root->kind, EDDY_CNODE_MAP);
            eddy__cnode_free(root);
        } else {
            assert_memory_equal(err, FILE_NAME ":", strlen(FILE_NAME) + 1);
        }
    }
}

static void mutated_topologies_never_crash(void **state) {
    (void)state;
    /* A tiny fuzzer over a realistic file: every outcome must be a mapping
     * or a positioned message (sanitizer builds catch the rest). */
    static const char base[] = "name: &n app\n"
                               "sources:\n"
                               "  - {name: clicks, type: kafka}\n"
                               "pipelines:\n"
                               "  - from: *n\n"
                               "    steps:\n"
                               "      - window: 10s\n"
                               "        emit: 'final'\n";
    static const char alphabet[] = "{}[]:,-&*!|>'\"#?\t\n x0<";
    unsigned seed = 7;
    char buf[sizeof(base) + 8];
    for (int round = 0; round < 5000; round++) {
        memcpy(buf, base, sizeof(base));
        size_t len = sizeof(base) - 1;
        for (int k = 0; k < 3; k++)
            buf[rand_r(&seed) % (int)len] = alphabet[rand_r(&seed) % (int)(sizeof(alphabet) - 1)];
        char err[512] = "";
        eddy_cnode_t *root = eddy__yaml_load(buf, len, FILE_NAME, err, sizeof(err));
        if (root) {
            assert_int_equal(root->kind, EDDY_CNODE_MAP);
            eddy__cnode_free(root);
        } else {
            assert_memory_equal(err, FILE_NAME ":", strlen(FILE_NAME) + 1);
        }
    }
}

static void ten_megabyte_single_line_loads_or_fails_cleanly(void **state) {
    (void)state;
    size_t big = 10u << 20;
    char *s = eddy_malloc(big + 16);

    /* one huge value loads */
    memcpy(s, "k: ", 3);
    memset(s + 3, 'v', big);
    eddy_cnode_t *root = eddy__yaml_load(s, big + 3, FILE_NAME, NULL, 0);
    assert_non_null(root);
    assert_int_equal(strlen(at(root, "k")->scalar), big);
    eddy__cnode_free(root);

    /* one huge plain scalar is not a mapping */
    memset(s, 'v', big);
    load_fails_with(s, big, "t.yaml:1:1: a topology must be a mapping");

    /* ten million opening brackets stop at the depth limit */
    memcpy(s, "k: ", 3);
    memset(s + 3, '[', big);
    load_fails_with(s, big + 3, "t.yaml:1:67: mappings and sequences nest deeper than 64 levels");

    /* a flow sequence of five million items stops at the node limit */
    memcpy(s, "k: [", 4);
    for (size_t i = 4; i + 1 < big; i += 2)
        memcpy(s + i, "1,", 2);
    s[big - 1] = ']';
    char err[512] = "";
    assert_null(eddy__yaml_load(s, big, FILE_NAME, err, sizeof(err)));
    /* the root map, key k and the sequence are nodes 1-3, so item 999997
     * (column 5 + 2 * 999997) is node 1000001 */
    assert_string_equal(err, "t.yaml:1:1999999: the document has more than 1000000 nodes");
    eddy_free(s);
}

static void tabs_as_indentation_fail_cleanly(void **state) {
    (void)state;
    const char *y = "a:\n"
                    "\tb: 1\n";
    load_fails_with(y, strlen(y),
                    "t.yaml:2:1: found character that cannot start any token "
                    "(while scanning for the next token at 2:1)");
}

/* ----------------------------------------------------------- check_keys */

static const char *const step_keys[] = {"window", "emit", "aggregate", NULL};

static void unknown_key_suggests_the_close_one_at_the_key_position(void **state) {
    (void)state;
    eddy_cnode_t *root = load("steps:\n"
                              "  - window: 10s\n"
                              "    windw: 5s\n");
    char err[512] = "";
    eddy_err_t rc = eddy__cfg_check_keys(at(root, "steps/0"), "step", step_keys, err, sizeof(err));
    assert_int_equal(rc, EDDY_ERR_CONFIG);
    assert_string_equal(err, "t.yaml:3:5: unknown key 'windw' in step (did you mean 'window'?; "
                             "expected one of: window, emit, aggregate)");
    eddy__cnode_free(root);
}

static void unknown_key_without_a_close_match_lists_the_allowed_keys(void **state) {
    (void)state;
    eddy_cnode_t *root = load("window: 10s\n"
                              "colour: red\n");
    char err[512] = "";
    assert_int_equal(eddy__cfg_check_keys(root, "step", step_keys, err, sizeof(err)),
                     EDDY_ERR_CONFIG);
    assert_string_equal(err, "t.yaml:2:1: unknown key 'colour' in step (expected one of: window, "
                             "emit, aggregate)");
    eddy__cnode_free(root);
}

static void known_keys_pass_check(void **state) {
    (void)state;
    eddy_cnode_t *root = load("window: 10s\nemit: final\n");
    char err[512] = "";
    assert_int_equal(eddy__cfg_check_keys(root, "step", step_keys, err, sizeof(err)), EDDY_OK);
    assert_string_equal(err, "");
    eddy__cnode_free(root);
}

static void suggest_picks_the_closest_within_the_edit_budget(void **state) {
    (void)state;
    static const char *const c[] = {"window", "partitions", "threads", "emit", NULL};
    assert_string_equal(eddy__cfg_suggest("windw", c), "window");
    assert_string_equal(eddy__cfg_suggest("widnow", c), "window"); /* swap */
    assert_string_equal(eddy__cfg_suggest("partitoins", c), "partitions");
    assert_string_equal(eddy__cfg_suggest("thread", c), "threads");
    assert_string_equal(eddy__cfg_suggest("emitt", c), "emit");
    assert_null(eddy__cfg_suggest("colour", c));
    assert_null(eddy__cfg_suggest("xy", c));
    assert_null(eddy__cfg_suggest("", c));
}

/* ---------------------------------------------------------------- getters */

static const char *const getters_yaml = "name: clicks\n"
                                        "threads: 4\n"
                                        "ratio: 0.25\n"
                                        "enabled: yes\n"
                                        "grace: 1.5s\n"
                                        "buffer: 64MiB\n"
                                        "emit: update\n"
                                        "opts: {a: 1}\n"
                                        "list: [1, 2]\n"
                                        "nothing: ~\n"
                                        "blank:\n"
                                        "quoted_int: \"8\"\n"
                                        "zero: 0\n";

static void getters_read_good_values(void **state) {
    (void)state;
    eddy_cnode_t *root = load(getters_yaml);
    char err[512] = "";
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    int idx = -1;
    eddy_cnode_t *sub = NULL;
    static const char *const emit[] = {"final", "update", NULL};
    assert_int_equal(eddy__cfg_str(root, "name", true, &s, err, sizeof(err)), EDDY_OK);
    assert_string_equal(s, "clicks");
    assert_int_equal(eddy__cfg_int(root, "threads", true, 1, 1024, &i, err, sizeof(err)), EDDY_OK);
    assert_int_equal(i, 4);
    assert_int_equal(eddy__cfg_int(root, "quoted_int", true, 1, 1024, &i, err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(i, 8);
    assert_int_equal(eddy__cfg_double(root, "ratio", true, 0, 1, &d, err, sizeof(err)), EDDY_OK);
    assert_true(d == 0.25);
    assert_int_equal(eddy__cfg_bool(root, "enabled", true, &b, err, sizeof(err)), EDDY_OK);
    assert_true(b);
    assert_int_equal(eddy__cfg_duration(root, "grace", true, &i, err, sizeof(err)), EDDY_OK);
    assert_int_equal(i, 1500);
    assert_int_equal(eddy__cfg_duration(root, "zero", true, &i, err, sizeof(err)), EDDY_OK);
    assert_int_equal(i, 0);
    assert_int_equal(eddy__cfg_bytes(root, "buffer", true, &i, err, sizeof(err)), EDDY_OK);
    assert_int_equal(i, 64 * 1024 * 1024);
    assert_int_equal(eddy__cfg_enum(root, "emit", true, emit, &idx, err, sizeof(err)), EDDY_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(eddy__cfg_map(root, "opts", true, &sub, err, sizeof(err)), EDDY_OK);
    assert_ptr_equal(sub, at(root, "opts"));
    assert_int_equal(eddy__cfg_seq(root, "list", true, &sub, err, sizeof(err)), EDDY_OK);
    assert_ptr_equal(sub, at(root, "list"));
    assert_string_equal(err, "");
    eddy__cnode_free(root);
}

static void bool_getter_accepts_yaml_spellings(void **state) {
    (void)state;
    eddy_cnode_t *root = load("a: true\nb: off\nc: On\nd: NO\ne: False\n");
    char err[512] = "";
    bool v;
    static const struct {
        const char *key;
        bool want;
    } cases[] = {{"a", true}, {"b", false}, {"c", true}, {"d", false}, {"e", false}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        v = !cases[k].want;
        assert_int_equal(eddy__cfg_bool(root, cases[k].key, true, &v, err, sizeof(err)), EDDY_OK);
        assert_int_equal(v, cases[k].want);
    }
    eddy__cnode_free(root);
}

static void absent_or_null_optional_keys_leave_the_default(void **state) {
    (void)state;
    eddy_cnode_t *root = load(getters_yaml);
    char err[512] = "";
    const char *s = "default";
    int64_t i = 77;
    double d = 7.5;
    bool b = true;
    int idx = 3;
    static const char *const emit[] = {"final", "update", NULL};
    static const char *const keys[] = {"missing", "nothing", "blank"};
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(eddy__cfg_str(root, keys[k], false, &s, err, sizeof(err)), EDDY_OK);
        assert_int_equal(eddy__cfg_int(root, keys[k], false, 0, 9, &i, err, sizeof(err)), EDDY_OK);
        assert_int_equal(eddy__cfg_double(root, keys[k], false, 0, 9, &d, err, sizeof(err)),
                         EDDY_OK);
        assert_int_equal(eddy__cfg_bool(root, keys[k], false, &b, err, sizeof(err)), EDDY_OK);
        assert_int_equal(eddy__cfg_duration(root, keys[k], false, &i, err, sizeof(err)), EDDY_OK);
        assert_int_equal(eddy__cfg_bytes(root, keys[k], false, &i, err, sizeof(err)), EDDY_OK);
        assert_int_equal(eddy__cfg_enum(root, keys[k], false, emit, &idx, err, sizeof(err)),
                         EDDY_OK);
    }
    assert_string_equal(s, "default");
    assert_int_equal(i, 77);
    assert_true(d == 7.5);
    assert_true(b);
    assert_int_equal(idx, 3);
    assert_string_equal(err, "");
    eddy__cnode_free(root);
}

/* Run a getter that must fail; compare the message. */
#define EXPECT_ERR(call, msg)                                                                      \
    do {                                                                                           \
        char err[512] = "";                                                                        \
        assert_int_equal((call), EDDY_ERR_CONFIG);                                                 \
        assert_string_equal(err, msg);                                                             \
    } while (0)

static void missing_required_keys_are_reported_at_the_map(void **state) {
    (void)state;
    eddy_cnode_t *root = load("src:\n"
                              "  name: x\n"
                              "  type:\n");
    eddy_cnode_t *src = at(root, "src");
    const char *s;
    int64_t i;
    EXPECT_ERR(eddy__cfg_str(src, "topic", true, &s, err, sizeof(err)),
               "t.yaml:2:3: missing required key 'topic'");
    EXPECT_ERR(eddy__cfg_int(src, "threads", true, 1, 9, &i, err, sizeof(err)),
               "t.yaml:2:3: missing required key 'threads'");
    /* present but null: pointed at the key */
    EXPECT_ERR(eddy__cfg_str(src, "type", true, &s, err, sizeof(err)),
               "t.yaml:3:3: key 'type' needs a value");
    eddy__cnode_free(root);
}

static void wrong_kinds_are_reported_at_the_value(void **state) {
    (void)state;
    eddy_cnode_t *root = load(getters_yaml);
    const char *s;
    int64_t i;
    double d;
    bool b;
    int idx;
    eddy_cnode_t *sub;
    static const char *const emit[] = {"final", "update", NULL};
    EXPECT_ERR(eddy__cfg_duration(root, "opts", true, &i, err, sizeof(err)),
               "t.yaml:8:7: key 'opts': expected a duration like 10s or 500ms, got a mapping");
    EXPECT_ERR(eddy__cfg_str(root, "list", true, &s, err, sizeof(err)),
               "t.yaml:9:7: key 'list': expected a string, got a sequence");
    EXPECT_ERR(eddy__cfg_int(root, "name", true, 1, 9, &i, err, sizeof(err)),
               "t.yaml:1:7: key 'name': expected an integer, got 'clicks'");
    EXPECT_ERR(eddy__cfg_int(root, "ratio", true, 1, 9, &i, err, sizeof(err)),
               "t.yaml:3:8: key 'ratio': expected an integer, got '0.25'");
    EXPECT_ERR(eddy__cfg_double(root, "name", true, 0, 1, &d, err, sizeof(err)),
               "t.yaml:1:7: key 'name': expected a number, got 'clicks'");
    EXPECT_ERR(eddy__cfg_bool(root, "threads", true, &b, err, sizeof(err)),
               "t.yaml:2:10: key 'threads': expected true or false, got '4'");
    EXPECT_ERR(eddy__cfg_bytes(root, "name", true, &i, err, sizeof(err)),
               "t.yaml:1:7: key 'name': expected a size like 64MiB or 512k, got 'clicks'");
    EXPECT_ERR(eddy__cfg_enum(root, "list", true, emit, &idx, err, sizeof(err)),
               "t.yaml:9:7: key 'list': expected one of final, update; got a sequence");
    EXPECT_ERR(eddy__cfg_map(root, "list", true, &sub, err, sizeof(err)),
               "t.yaml:9:7: key 'list': expected a mapping, got a sequence");
    EXPECT_ERR(eddy__cfg_seq(root, "name", true, &sub, err, sizeof(err)),
               "t.yaml:1:7: key 'name': expected a sequence, got 'clicks'");
    eddy__cnode_free(root);
}

static void bad_values_say_what_was_expected_and_found(void **state) {
    (void)state;
    eddy_cnode_t *root = load("threads: 0\n"
                              "big: 99999999999999999999\n"
                              "ratio: 1.5\n"
                              "nan: .nan\n"
                              "grace: -5s\n"
                              "hex: 0x10\n"
                              "size: -1MiB\n"
                              "unit: 10 parsecs\n"
                              "emit: finale\n"
                              "flag: maybe\n"
                              "neg: -3\n");
    int64_t i;
    double d;
    bool b;
    int idx;
    static const char *const emit[] = {"final", "update", NULL};
    EXPECT_ERR(eddy__cfg_int(root, "threads", true, 1, 1024, &i, err, sizeof(err)),
               "t.yaml:1:10: key 'threads': 0 is out of range [1, 1024]");
    EXPECT_ERR(eddy__cfg_int(root, "big", true, INT64_MIN, INT64_MAX, &i, err, sizeof(err)),
               "t.yaml:2:6: key 'big': 99999999999999999999 is out of range [-9223372036854775808, "
               "9223372036854775807]");
    EXPECT_ERR(eddy__cfg_int(root, "neg", true, 0, INT64_MAX, &i, err, sizeof(err)),
               "t.yaml:11:6: key 'neg': -3 is out of range: must be >= 0");
    EXPECT_ERR(eddy__cfg_double(root, "ratio", true, 0, 1, &d, err, sizeof(err)),
               "t.yaml:3:8: key 'ratio': 1.5 is out of range [0, 1]");
    EXPECT_ERR(eddy__cfg_double(root, "nan", true, 0, 1, &d, err, sizeof(err)),
               "t.yaml:4:6: key 'nan': expected a number, got '.nan'");
    EXPECT_ERR(eddy__cfg_duration(root, "grace", true, &i, err, sizeof(err)),
               "t.yaml:5:8: key 'grace': a duration must be >= 0, got '-5s'");
    EXPECT_ERR(eddy__cfg_duration(root, "hex", true, &i, err, sizeof(err)),
               "t.yaml:6:6: key 'hex': expected a duration like 10s or 500ms, got '0x10'");
    EXPECT_ERR(eddy__cfg_duration(root, "unit", true, &i, err, sizeof(err)),
               "t.yaml:8:7: key 'unit': expected a duration like 10s or 500ms, got '10 parsecs'");
    EXPECT_ERR(eddy__cfg_bytes(root, "size", true, &i, err, sizeof(err)),
               "t.yaml:7:7: key 'size': a size must be >= 0, got '-1MiB'");
    EXPECT_ERR(eddy__cfg_enum(root, "emit", true, emit, &idx, err, sizeof(err)),
               "t.yaml:9:7: key 'emit': expected one of final, update; got 'finale'");
    EXPECT_ERR(eddy__cfg_bool(root, "flag", true, &b, err, sizeof(err)),
               "t.yaml:10:7: key 'flag': expected true or false, got 'maybe'");
    eddy__cnode_free(root);
}

static void int_getter_takes_the_int64_extremes(void **state) {
    (void)state;
    eddy_cnode_t *root = load("lo: -9223372036854775808\nhi: 9223372036854775807\n");
    char err[512] = "";
    int64_t i = 0;
    assert_int_equal(eddy__cfg_int(root, "lo", true, INT64_MIN, INT64_MAX, &i, err, sizeof(err)),
                     EDDY_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(eddy__cfg_int(root, "hi", true, INT64_MIN, INT64_MAX, &i, err, sizeof(err)),
                     EDDY_OK);
    assert_true(i == INT64_MAX);
    eddy__cnode_free(root);
}

static void node_getters_check_sequence_items(void **state) {
    (void)state;
    eddy_cnode_t *root = load("partitions: [0, 1, x, ~]\n");
    eddy_cnode_t *p = at(root, "partitions");
    int64_t i = -1;
    assert_int_equal(eddy__cfg_node_int(p->items[1], "partitions[1]", 0, 9, &i, NULL, 0), EDDY_OK);
    assert_int_equal(i, 1);
    EXPECT_ERR(eddy__cfg_node_int(p->items[2], "partitions[2]", 0, 9, &i, err, sizeof(err)),
               "t.yaml:1:20: partitions[2]: expected an integer, got 'x'");
    EXPECT_ERR(eddy__cfg_node_int(p->items[3], "partitions[3]", 0, 9, &i, err, sizeof(err)),
               "t.yaml:1:23: partitions[3]: expected an integer, got null");
    eddy__cnode_free(root);
}

static void getters_work_on_trees_built_through_the_c_api(void **state) {
    (void)state;
    eddy_cnode_t *map = eddy__cnode_new(EDDY_CNODE_MAP, NULL, 0, 0);
    eddy_cnode_set(map, "threads", "0");
    eddy_cnode_set(map, "name", "");
    int64_t i;
    const char *s = NULL;
    EXPECT_ERR(eddy__cfg_int(map, "threads", true, 1, 8, &i, err, sizeof(err)),
               "<api>: key 'threads': 0 is out of range [1, 8]");
    /* built in C, "" is a string, not a YAML null */
    assert_int_equal(eddy__cfg_str(map, "name", true, &s, NULL, 0), EDDY_OK);
    assert_string_equal(s, "");
    eddy__cnode_free(map);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(block_style_nodes_carry_exact_line_and_col),
        cmocka_unit_test(flow_style_nodes_carry_exact_line_and_col),
        cmocka_unit_test(columns_count_characters_not_utf8_bytes),
        cmocka_unit_test(scalars_record_whether_they_were_quoted),
        cmocka_unit_test(sequence_of_maps_loads_in_file_order),
        cmocka_unit_test(syntax_error_names_file_line_and_col),
        cmocka_unit_test(duplicate_key_error_gives_both_positions),
        cmocka_unit_test(duplicate_key_is_found_in_a_long_flow_mapping),
        cmocka_unit_test(non_scalar_key_is_rejected),
        cmocka_unit_test(second_document_is_rejected),
        cmocka_unit_test(empty_document_is_rejected),
        cmocka_unit_test(root_that_is_not_a_mapping_is_rejected),
        cmocka_unit_test(merge_key_is_rejected_with_a_reason),
        cmocka_unit_test(unknown_and_recursive_aliases_are_rejected),
        cmocka_unit_test(local_tags_are_rejected),
        cmocka_unit_test(nul_character_in_a_scalar_is_rejected),
        cmocka_unit_test(alias_is_a_deep_copy_positioned_at_the_alias),
        cmocka_unit_test(redefined_anchor_resolves_to_its_latest_definition),
        cmocka_unit_test(many_anchors_and_aliases_load_quickly),
        cmocka_unit_test(alias_bomb_is_rejected),
        cmocka_unit_test(alias_of_a_long_string_repeated_is_rejected),
        cmocka_unit_test(nesting_up_to_the_depth_limit_loads_and_one_more_fails),
        cmocka_unit_test(alias_that_would_nest_too_deep_is_rejected),
        cmocka_unit_test(binary_garbage_fails_cleanly),
        cmocka_unit_test(mutated_topologies_never_crash),
        cmocka_unit_test(ten_megabyte_single_line_loads_or_fails_cleanly),
        cmocka_unit_test(tabs_as_indentation_fail_cleanly),
        cmocka_unit_test(unknown_key_suggests_the_close_one_at_the_key_position),
        cmocka_unit_test(unknown_key_without_a_close_match_lists_the_allowed_keys),
        cmocka_unit_test(known_keys_pass_check),
        cmocka_unit_test(suggest_picks_the_closest_within_the_edit_budget),
        cmocka_unit_test(getters_read_good_values),
        cmocka_unit_test(bool_getter_accepts_yaml_spellings),
        cmocka_unit_test(absent_or_null_optional_keys_leave_the_default),
        cmocka_unit_test(missing_required_keys_are_reported_at_the_map),
        cmocka_unit_test(wrong_kinds_are_reported_at_the_value),
        cmocka_unit_test(bad_values_say_what_was_expected_and_found),
        cmocka_unit_test(int_getter_takes_the_int64_extremes),
        cmocka_unit_test(node_getters_check_sequence_items),
        cmocka_unit_test(getters_work_on_trees_built_through_the_c_api),
    };
    return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}

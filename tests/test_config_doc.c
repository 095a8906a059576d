/*
 * docs/config.md documents exactly the config's keys: every key of io_config.c's key table
 * (io_config_key_path) has a row in the doc, and every key row of the doc is a key of the
 * table.
 *
 * The doc's key rows are the rows of its tables whose header's first cell is "key": under
 * "## Keys", a table below "### SECTION" names SECTION.KEY (`augment.flip` under "### data"
 * is data.augment.flip); under "## Phases", the keys of each phase, train.phases.*.KEY.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/io.h"
#include "nn/nn.h"

#define DOC STRATA_SOURCE "/docs/config.md"
#define MAX_KEYS 512

typedef struct keyset {
    char key[MAX_KEYS][256];
    int line[MAX_KEYS]; /* the doc's line, 0 for the table's keys */
    int n;
} keyset;

static int keyset_find(const keyset *s, const char *k)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->key[i], k) == 0) return i;
    return -1;
}

/* The key of a table row "| `name` | ...", or 0 when the row's first cell is not one
 * backquoted word. */
static int row_key(const char *line, char *out, size_t len)
{
    if (strncmp(line, "| `", 3) != 0) return 0;
    const char *s = line + 3, *e = strchr(s, '`');
    if (e == NULL || e == s || (size_t)(e - s) >= len || strncmp(e, "` |", 3) != 0) return 0;
    snprintf(out, len, "%.*s", (int)(e - s), s);
    return 1;
}

/* Reads the doc's key rows into *doc; fails on a key table outside a known place and on a
 * key given twice. */
static void read_doc(keyset *doc)
{
    FILE *f = fopen(DOC, "r");
    if (f == NULL) fail_msg("cannot open %s", DOC);
    char line[4096], prefix[128] = "", section[128] = "";
    int lineno = 0, in_table = 0;
    doc->n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "## ", 3) == 0) {
            snprintf(section, sizeof section, "%.100s", line + 3);
            snprintf(prefix, sizeof prefix, "%s", strcmp(section, "Phases") == 0 ?
                     "train.phases.*" : "");
        } else if (strncmp(line, "### ", 4) == 0 && strcmp(section, "Keys") == 0) {
            snprintf(prefix, sizeof prefix, "%.100s", line + 4);
        }
        if (line[0] != '|') {
            in_table = 0;
            continue;
        }
        if (!in_table) { /* A table's header. */
            in_table = strncmp(line, "| key |", 7) == 0 ? 1 : -1;
            if (in_table == 1 && prefix[0] == '\0')
                fail_msg("%s:%d: a table of keys outside a section of keys (## Keys, ### "
                         "SECTION, or ## Phases)", DOC, lineno);
            continue;
        }
        char name[96];
        if (in_table != 1 || !row_key(line, name, sizeof name)) continue;
        assert_true(doc->n < MAX_KEYS);
        snprintf(doc->key[doc->n], sizeof doc->key[0], "%s.%s", prefix, name);
        int first = keyset_find(doc, doc->key[doc->n]);
        if (first >= 0)
            fail_msg("%s:%d: %s is documented twice (first at line %d)", DOC, lineno,
                     doc->key[doc->n], doc->line[first]);
        doc->line[doc->n++] = lineno;
    }
    fclose(f);
}

static void test_doc_names_the_table_keys(void **state)
{
    (void)state;
    static keyset table, doc;
    table.n = io_config_key_count();
    assert_true(table.n > 0 && table.n <= MAX_KEYS);
    for (int i = 0; i < table.n; i++) {
        if (io_config_key_path(table.key[i], sizeof table.key[i], i) != 0)
            fail_msg("io_config_key_path(%d): %s", i, nn_errmsg());
        table.line[i] = 0;
    }
    char buf[8];
    assert_int_equal(io_config_key_path(buf, sizeof buf, table.n), NN_ERANGE);
    assert_int_equal(io_config_key_path(buf, sizeof buf, -1), NN_ERANGE);

    read_doc(&doc);
    int bad = 0;
    for (int i = 0; i < table.n; i++)
        if (keyset_find(&doc, table.key[i]) < 0) {
            print_error("%s: the key %s is not documented (a row `%s` in its section's table)\n",
                        DOC, table.key[i], strrchr(table.key[i], '.') + 1);
            bad++;
        }
    for (int i = 0; i < doc.n; i++)
        if (keyset_find(&table, doc.key[i]) < 0) {
            print_error("%s:%d: %s is not a config key (io/io_config.c's key table)\n", DOC,
                        doc.line[i], doc.key[i]);
            bad++;
        }
    if (bad) fail_msg("%d difference(s) between docs/config.md and the key table", bad);
    assert_int_equal(doc.n, table.n);
}

/* A few keys by name, so that the walk above cannot pass by listing nothing useful. */
static void test_key_paths(void **state)
{
    (void)state;
    static const char *const want[] = {"model.arch", "comm.bucket_mb", "schedule.moms",
                                       "data.augment.flip", "train.fine_tune.lr_mult",
                                       "train.phases", "train.phases.*.schedule", "run.dir"};
    int n = io_config_key_count();
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (int i = 0; i < n && !found; i++) {
            char k[128];
            assert_int_equal(io_config_key_path(k, sizeof k, i), 0);
            found = strcmp(k, want[w]) == 0;
        }
        if (!found) fail_msg("no key %s", want[w]);
    }
    char small[4];
    int rc = io_config_key_path(small, sizeof small, 0); /* "model.arch" */
    assert_int_equal(rc, NN_ERANGE);
    assert_string_equal(small, "mod");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_names_the_table_keys),
        cmocka_unit_test(test_key_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

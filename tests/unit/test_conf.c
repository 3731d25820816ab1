/* Unit tests for conf/: the example file, defaults, every error class with
 * its exact FILE:LINE message, value syntaxes, restart keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ini.h>

#include "conf.h"

#ifndef CONF_DATA_DIR
#error "CONF_DATA_DIR must name tests/data/conf"
#endif
#ifndef CONF_EXAMPLE
#error "CONF_EXAMPLE must name conf/driftd.ini"
#endif

#define SEC_US UINT64_C(1000000)

/* Smallest valid body: 7 lines, so a line appended after it is line 8. */
#define BASE                                                                   \
    "[store]\n"                                                                \
    "dsn = x\n"                                                                \
    "[model.m]\n"                                                              \
    "dim = 4\n"                                                                \
    "reference.size = 10\n"                                                    \
    "window.size = 5\n"                                                        \
    "detectors = mmd\n"

#define SECRET24 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static struct conf *load_ok(const char *text)
{
    struct conf *c = NULL;
    char err[2048];
    int rc = conf_load_string(text, "t.ini", &c, err, sizeof err);
    if (rc != 0)
        fail_msg("unexpected error %d: %s", rc, err);
    assert_non_null(c);
    return c;
}

/* The whole error text must equal want. */
static void expect_err(const char *text, const char *want)
{
    struct conf *c = (struct conf *)1;
    char err[2048];
    int rc = conf_load_string(text, "t.ini", &c, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_null(c);
    assert_string_equal(err, want);
}

/* --- the example file ---------------------------------------------------- */

static void test_example_loads(void **state)
{
    struct conf *c = NULL;
    char err[2048];
    (void)state;
    int rc = conf_load(CONF_EXAMPLE, &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c->path, CONF_EXAMPLE);
    assert_int_equal(c->n_ingest, 2);
    assert_string_equal(c->ingest[1], "unix:/run/driftd/ingest.sock");
    assert_null(c->token);
    assert_string_equal(c->dsn, "host=/run/postgresql dbname=driftd");
    assert_int_equal(c->n_models, 1);
    const struct conf_model *m = conf_model_find(c, "search-encoder");
    assert_non_null(m);
    assert_int_equal(m->dim, 768);
    assert_int_equal(m->n_slice_by, 2);
    assert_string_equal(m->slice_by[1], "device");
    assert_int_equal(m->detectors,
                     CONF_DET_MMD | CONF_DET_CENTROID | CONF_DET_KS_DIMS | CONF_DET_CALIBRATION);
    assert_int_equal(m->window_interval_us, 300 * SEC_US);
    assert_string_equal(m->on_drift, "retrain");
    const struct conf_webhook *w = conf_webhook_find(c, "retrain");
    assert_non_null(w);
    assert_int_equal(w->n_secrets, 1);
    assert_int_equal(w->cooldown_us, 3600 * SEC_US);
    conf_free(c);
}

struct key_set {
    char keys[128][64];
    size_t n;
};

static void key_set_add(struct key_set *s, const char *kind, size_t kind_len, const char *key)
{
    assert_true(s->n < 128);
    snprintf(s->keys[s->n++], sizeof s->keys[0], "%.*s %s", (int)kind_len, kind, key);
}

static bool key_set_has(const struct key_set *s, const char *entry)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], entry) == 0)
            return true;
    return false;
}

static int collect_example_key(void *user, const char *section, const char *name,
                               const char *value)
{
    (void)value;
    key_set_add(user, section, strcspn(section, "."), name);
    return 1;
}

/* Every key of the table (as listed by conf_print_defaults) is set in the
 * example, so the example documents the whole surface. */
static void test_example_has_every_key(void **state)
{
    static struct key_set table, example;
    char *out = NULL, *line, *save;
    size_t out_len = 0;
    char kind[32] = "";
    FILE *f = open_memstream(&out, &out_len);
    (void)state;

    assert_non_null(f);
    conf_print_defaults(f);
    fclose(f);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '[')
            snprintf(kind, sizeof kind, "%.*s", (int)strcspn(line + 1, ".]"), line + 1);
        else if (line[0] == ';' && line[1] != ' ' && strstr(line, " =")) {
            *strstr(line, " =") = '\0';
            key_set_add(&table, kind, strlen(kind), line + 1);
        }
    }
    free(out);
    assert_true(table.n >= 36);

    assert_int_equal(ini_parse(CONF_EXAMPLE, collect_example_key, &example), 0);
    for (size_t i = 0; i < table.n; i++)
        if (!key_set_has(&example, table.keys[i]))
            fail_msg("conf/driftd.ini does not set '%s'", table.keys[i]);
}

/* The --print-defaults output is itself INI that inih reads without error,
 * and it names type and reloadability. */
static void test_print_defaults(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    (void)state;
    assert_non_null(f);
    conf_print_defaults(f);
    fclose(f);
    assert_non_null(strstr(out, "\n[model.NAME]\n"));
    assert_non_null(strstr(out, "; integer: 1..65536; required; reloadable\n;dim =\n"));
    assert_non_null(strstr(out, "; integer: 0..1024; restart to change\n;workers = 0\n"));
    assert_non_null(strstr(out, "; number: (0, 1); reloadable\n;alpha = 0.01\n"));
    assert_non_null(strstr(out, "; size: 1k..64M; reloadable\n;max_line = 1M\n"));
    assert_non_null(strstr(out, "; duration: 100ms..5m; reloadable\n;timeout = 10s\n"));
    assert_int_equal(ini_parse_string(out, collect_example_key, &(struct key_set){ .n = 0 }), 0);
    free(out);
}

/* --- valid files --------------------------------------------------------- */

static void test_full_file(void **state)
{
    struct conf *c = NULL;
    char err[2048];
    (void)state;
    if (conf_load(CONF_DATA_DIR "/full.ini", &c, err, sizeof err))
        fail_msg("%s", err);

    assert_string_equal(c->state_dir, "/srv/driftd/state");
    assert_int_equal(c->workers, 6);
    assert_int_equal(c->log_level, CONF_LOG_DEBUG);
    assert_int_equal(c->shutdown_timeout_us, 120 * SEC_US);
    assert_int_equal(c->webhook_concurrency, 4);
    assert_int_equal(c->webhook_poll_us, 250000);
    assert_int_equal(c->job_timeout_us, 90 * SEC_US);
    assert_int_equal(c->status_interval_us, 500000);
    assert_int_equal(c->n_ingest, 3);
    assert_string_equal(c->ingest[0], "tcp://0.0.0.0:9000");
    assert_string_equal(c->ingest[1], "tcp://[::1]:9000");
    assert_string_equal(c->ingest[2], "unix:/run/driftd/in.sock");
    assert_int_equal(c->n_http, 1);
    assert_string_equal(c->http[0], "tcp://localhost:9001");
    assert_string_equal(c->token, "s3cret-Token_42");
    assert_int_equal(c->max_line, 4 * 1024 * 1024);
    assert_int_equal(c->max_frame, 8 * 1024 * 1024);
    assert_int_equal(c->max_body, 2 * 1024 * 1024);
    assert_int_equal(c->max_connections, 64);
    assert_int_equal(c->idle_timeout_us, 90 * SEC_US);
    assert_int_equal(c->handshake_timeout_us, 3 * SEC_US);
    assert_int_equal(c->frame_timeout_us, 20 * SEC_US);
    assert_int_equal(c->http_timeout_us, 5 * SEC_US);
    assert_string_equal(c->dsn, "service=driftd");
    assert_int_equal(c->persist_reference, CONF_PERSIST_PROJECTED);
    assert_int_equal(c->query_timeout_us, 1500000);
    assert_int_equal(c->max_pending, 50);
    assert_int_equal(c->journal_max, 16 * 1024 * 1024);
    assert_int_equal(c->persist_projection_dim, 32);

    assert_int_equal(c->n_models, 2);
    const struct conf_model *m = &c->models[0];
    assert_string_equal(m->name, "ranker_v2.1");
    assert_int_equal(m->dim, 384);
    assert_int_equal(m->n_slice_by, 3);
    assert_string_equal(m->slice_by[0], "region");
    assert_string_equal(m->slice_by[2], "app-version");
    assert_int_equal(m->reference_size, 5000);
    assert_int_equal(m->window_size, 0);
    assert_int_equal(m->window_interval_us, 3600 * SEC_US);
    assert_int_equal(m->window_min_size, 50);
    assert_int_equal(m->max_queued_windows, 3);
    assert_int_equal(m->detectors, 0xff);
    assert_int_equal(m->mmd_permutations, 0);
    assert_int_equal(m->mmd_bandwidth_points, 250);
    assert_true(m->centroid_threshold == 2.0);
    assert_int_equal(m->energy_permutations, 99);
    assert_int_equal(m->classifier_permutations, 0);
    assert_true(m->classifier_holdout == 0.3);
    assert_true(m->classifier_l2 == 2.5);
    assert_int_equal(m->classifier_max_iter, 40);
    assert_true(m->health_collapse_drop == 1.0);
    assert_true(m->health_uniformity_rise == 4.0);
    assert_true(m->health_norm_change == 0.5);
    assert_true(m->health_duplicate_rise == 0.2);
    assert_true(m->health_duplicate_cosine == 1.0);
    assert_true(m->scores_psi_threshold == 0.25);
    assert_true(m->scores_js_threshold == 1.0);
    assert_int_equal(m->projection_dim, 64);
    assert_int_equal(m->detector_memory, 512u << 20);
    assert_true(m->alpha == 0.05);
    assert_int_equal(m->correction, CONF_CORR_BONFERRONI);
    assert_true(m->effect_floor == 0.25);
    assert_int_equal(m->n_effect_floor_by_test, 2);
    assert_true(conf_effect_floor(m, "mmd") == 0.002);
    assert_true(conf_effect_floor(m, "centroid_cosine") == 1.5);
    assert_true(conf_effect_floor(m, "centroid_euclidean") == 0.25);
    assert_true(conf_effect_floor(m, "energy") == 0.25);
    assert_int_equal(m->reference_min_size, 100);
    assert_int_equal(m->slice_idle_us, 0);
    assert_int_equal(m->alarm_k, 3);
    assert_int_equal(m->alarm_m, 5);
    assert_int_equal(m->scores_width, 4);
    assert_int_equal(m->storage, CONF_STORAGE_FLOAT16);
    assert_int_equal(m->labels_ttl_us, 600 * SEC_US);
    assert_int_equal(m->labels_max_pending, 0);
    assert_int_equal(m->calibration_min_labels, 200);
    assert_true(m->calibration_ece_margin == 0.1);
    assert_true(m->calibration_brier_margin == 0.2);
    assert_int_equal(m->max_slices, 12);
    assert_true(m->seed == UINT64_MAX);
    assert_string_equal(m->on_drift, "pager");
    assert_int_equal(m->stream_detectors, CONF_STREAM_PH | CONF_STREAM_ADWIN);
    assert_int_equal(m->stream_signals, CONF_SIGNAL_ERROR);
    assert_true(m->stream_ph_delta == 0.05);
    assert_true(m->stream_ph_threshold == 20.0);
    assert_int_equal(m->stream_ph_min_samples, 100);
    assert_true(m->stream_ph_forget == 0.999);
    assert_int_equal(m->stream_ph_direction, CONF_DIR_UP);
    assert_true(m->stream_adwin_delta == 0.0001);
    assert_int_equal(m->stream_adwin_clock, 1);
    assert_int_equal(m->stream_adwin_max_buckets, 16);
    assert_int_equal(m->stream_adwin_min_window, 50);
    assert_int_equal(m->stream_alarm_interval_us, 0);
    m = &c->models[1];
    assert_string_equal(m->name, "tiny");
    assert_int_equal(m->detectors, CONF_DET_SCORES);
    assert_int_equal(m->correction, CONF_CORR_NONE);

    assert_int_equal(c->n_webhooks, 2);
    const struct conf_webhook *w = &c->webhooks[0];
    assert_string_equal(w->name, "pager");
    assert_string_equal(w->url, "http://hooks.internal:8080/driftd?team=ml");
    assert_int_equal(w->n_secrets, 2);
    assert_string_equal(w->secrets[0], SECRET24);
    assert_int_equal(w->cooldown_us, 0);
    assert_int_equal(w->timeout_us, 2 * SEC_US);
    assert_int_equal(w->retry_horizon_us, 7 * 86400 * SEC_US);
    assert_int_equal(w->max_attempts, 5);
    assert_int_equal(w->retry_initial_us, 250000);
    assert_int_equal(w->retry_max_delay_us, 600 * SEC_US);
    assert_int_equal(w->events, CONF_EV_DRIFT | CONF_EV_COLLAPSE | CONF_EV_STREAM);
    assert_int_equal(w->allow_addresses, CONF_ALLOW_LOOPBACK | CONF_ALLOW_PRIVATE);
    assert_string_equal(w->ca_file, "/etc/driftd/ca.pem");
    assert_int_equal(w->payload_max_slices, 7);
    conf_free(c);
}

static void test_defaults(void **state)
{
    struct conf *c = NULL;
    char err[2048];
    (void)state;
    if (conf_load(CONF_DATA_DIR "/minimal.ini", &c, err, sizeof err))
        fail_msg("%s", err);

    assert_string_equal(c->state_dir, "/var/lib/driftd");
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->log_level, CONF_LOG_INFO);
    assert_int_equal(c->shutdown_timeout_us, 30 * SEC_US);
    assert_int_equal(c->webhook_concurrency, 16);
    assert_int_equal(c->webhook_poll_us, 1 * SEC_US);
    assert_int_equal(c->job_timeout_us, 600 * SEC_US);
    assert_int_equal(c->status_interval_us, 10 * SEC_US);
    assert_int_equal(c->n_ingest, 1);
    assert_string_equal(c->ingest[0], "tcp://127.0.0.1:7070");
    assert_int_equal(c->n_http, 1);
    assert_string_equal(c->http[0], "tcp://127.0.0.1:7071");
    assert_null(c->token);
    assert_int_equal(c->max_line, 1048576);
    assert_int_equal(c->max_frame, 4 * 1048576);
    assert_int_equal(c->max_body, 16 * 1048576);
    assert_int_equal(c->max_connections, 1024);
    assert_int_equal(c->idle_timeout_us, 300 * SEC_US);
    assert_int_equal(c->handshake_timeout_us, 10 * SEC_US);
    assert_int_equal(c->frame_timeout_us, 60 * SEC_US);
    assert_int_equal(c->http_timeout_us, 30 * SEC_US);
    assert_int_equal(c->persist_reference, CONF_PERSIST_RAW);
    assert_int_equal(c->query_timeout_us, 30 * SEC_US);
    assert_int_equal(c->max_pending, 10000);
    assert_int_equal(c->n_webhooks, 0);
    assert_null(c->webhooks);

    const struct conf_model *m = conf_model_find(c, "m");
    assert_non_null(m);
    assert_int_equal(m->n_slice_by, 0);
    assert_null(m->slice_by);
    assert_int_equal(m->window_size, 0);
    assert_int_equal(m->window_interval_us, 600 * SEC_US);
    assert_int_equal(m->window_min_size, 20);
    assert_int_equal(m->max_queued_windows, 16);
    assert_int_equal(m->mmd_permutations, 500);
    assert_int_equal(m->mmd_bandwidth_points, 1000);
    assert_true(m->centroid_threshold == 0.1);
    assert_int_equal(m->energy_permutations, 500);
    assert_int_equal(m->classifier_permutations, 1000);
    assert_true(m->classifier_holdout == 0.5);
    assert_true(m->classifier_l2 == 1.0);
    assert_int_equal(m->classifier_max_iter, 100);
    assert_true(m->health_collapse_drop == 0.25);
    assert_true(m->health_uniformity_rise == 0.5);
    assert_true(m->health_norm_change == 0.25);
    assert_true(m->health_duplicate_rise == 0.05);
    assert_true(m->health_duplicate_cosine == 0.99);
    assert_true(m->scores_psi_threshold == 0.2);
    assert_true(m->scores_js_threshold == 0.1);
    assert_int_equal(m->projection_dim, 0);
    assert_int_equal(m->detector_memory, 2u << 30);
    assert_true(m->alpha == 0.01);
    assert_int_equal(m->correction, CONF_CORR_BH);
    assert_true(m->effect_floor == 0.0);
    assert_int_equal(m->n_effect_floor_by_test, 0);
    assert_true(conf_effect_floor(m, "mmd") == 0.0);
    assert_int_equal(m->max_slices, 1000);
    assert_int_equal(m->seed, 1);
    assert_null(m->on_drift);
    assert_int_equal(m->reference_min_size, 20);
    assert_int_equal(m->slice_idle_us, 24 * 3600 * SEC_US);
    assert_int_equal(m->alarm_k, 1);
    assert_int_equal(m->alarm_m, 1);
    assert_int_equal(m->scores_width, 0);
    assert_int_equal(m->storage, CONF_STORAGE_FLOAT32);
    assert_int_equal(m->labels_ttl_us, 3600 * SEC_US);
    assert_int_equal(m->labels_max_pending, 100000);
    assert_int_equal(m->calibration_min_labels, 30);
    assert_true(m->calibration_ece_margin == 0.05);
    assert_true(m->calibration_brier_margin == 0.05);
    assert_int_equal(m->stream_detectors, 0);
    assert_int_equal(m->stream_signals, CONF_SIGNAL_SCORE | CONF_SIGNAL_ERROR);
    assert_true(m->stream_ph_delta == 0.025);
    assert_true(m->stream_ph_threshold == 50.0);
    assert_int_equal(m->stream_ph_min_samples, 30);
    assert_true(m->stream_ph_forget == 1.0);
    assert_int_equal(m->stream_ph_direction, CONF_DIR_BOTH);
    assert_true(m->stream_adwin_delta == 0.002);
    assert_int_equal(m->stream_adwin_clock, 32);
    assert_int_equal(m->stream_adwin_max_buckets, 5);
    assert_int_equal(m->stream_adwin_min_window, 5);
    assert_int_equal(m->stream_alarm_interval_us, 60 * SEC_US);
    assert_int_equal(c->journal_max, 256 * 1024 * 1024);
    assert_int_equal(c->persist_projection_dim, 64);
    conf_free(c);
}

static void test_webhook_defaults(void **state)
{
    (void)state;
    struct conf *c = load_ok(BASE "[webhook.w]\nurl = https://h/\nsecret = " SECRET24 "\n");
    const struct conf_webhook *w = conf_webhook_find(c, "w");
    assert_non_null(w);
    assert_int_equal(w->cooldown_us, 3600 * SEC_US);
    assert_int_equal(w->timeout_us, 10 * SEC_US);
    assert_int_equal(w->retry_horizon_us, 24 * 3600 * SEC_US);
    assert_int_equal(w->max_attempts, 20);
    assert_int_equal(w->retry_initial_us, 5 * SEC_US);
    assert_int_equal(w->retry_max_delay_us, 3600 * SEC_US);
    assert_int_equal(w->events,
                     CONF_EV_DRIFT | CONF_EV_CALIBRATION | CONF_EV_COLLAPSE | CONF_EV_STREAM);
    assert_int_equal(w->allow_addresses, 0);
    assert_null(w->ca_file);
    assert_int_equal(w->payload_max_slices, 1000);
    assert_null(conf_webhook_find(c, "x"));
    assert_null(conf_model_find(c, "w"));
    conf_free(c);
}

/* --- syntax -------------------------------------------------------------- */

static void test_comments_and_whitespace(void **state)
{
    (void)state;
    struct conf *c = load_ok("\xEF\xBB\xBF; BOM, then a comment\r\n"
                             "# hash comment\r\n"
                             "[ listen ]   ; header comment\r\n"
                             "   token = ab;cd   ; the first ; has no space before it\r\n"
                             "\thttp =    \r\n"
                             "max_line: 2k\n"
                             "  [store]\n"
                             "dsn = host=/tmp   port=5432;x\n"
                             "[model.m]\n"
                             "    dim = 4\n"
                             "reference.size = 10\n"
                             "window.size = 5\n"
                             "detectors = MMD ,  Centroid\n"
                             "correction = BH\n"
                             "\n"
                             "   \n");
    assert_string_equal(c->token, "ab;cd");
    assert_int_equal(c->n_http, 0);
    assert_null(c->http);
    assert_int_equal(c->max_line, 2048);
    assert_string_equal(c->dsn, "host=/tmp   port=5432;x");
    assert_int_equal(c->models[0].dim, 4);
    assert_int_equal(c->models[0].detectors, CONF_DET_MMD | CONF_DET_CENTROID);
    conf_free(c);

    /* The last line needs no newline. */
    c = load_ok(BASE "seed = 3");
    assert_int_equal(c->models[0].seed, 3);
    conf_free(c);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_err("dim = 4\n" BASE, "t.ini:1: dim: key outside any section");
    expect_err(BASE "just words\n", "t.ini:8: expected 'key = value' or '[section]'");
    expect_err(BASE "= 5\n", "t.ini:8: expected 'key = value' or '[section]'");
    /* Keys after a broken header are skipped, not blamed on [model.m]. */
    expect_err(BASE "[daemon\nworkers = x\n", "t.ini:8: section header has no closing ]");
    expect_err(BASE "[daemon] x\nworkers = x\n", "t.ini:8: text after section header");
    expect_err(BASE "dim\x01 = 4\n", "t.ini:8: control character in line");
}

static void test_long_line(void **state)
{
    char text[1024];
    (void)state;
    /* Debian's libinih reads lines of at most 199 bytes. */
    snprintf(text, sizeof text, BASE "slice_by = %0190d\n", 0);
    expect_err(text, "t.ini:8: line is longer than 199 bytes");
    /* A long comment does not count: comments are removed first. */
    snprintf(text, sizeof text, BASE "seed = 7   ; %0300d\n", 0);
    struct conf *c = load_ok(text);
    assert_int_equal(c->models[0].seed, 7);
    conf_free(c);
}

/* --- sections and keys --------------------------------------------------- */

static void test_unknown_key(void **state)
{
    (void)state;
    expect_err("[daemon]\nwrkers = 2\n" BASE, "t.ini:2: [daemon] wrkers: unknown key");
    expect_err(BASE "Dim = 4\n", "t.ini:8: [model.m] Dim: unknown key");
    /* A key of another section is unknown here. */
    expect_err(BASE "dsn = y\n", "t.ini:8: [model.m] dsn: unknown key");
}

static void test_unknown_section(void **state)
{
    (void)state;
    expect_err(BASE "[deamon]\nworkers = x\n",
               "t.ini:8: [deamon]: unknown section (expected [daemon], [listen], [store], "
               "[model.NAME] or [webhook.NAME])");
    expect_err(BASE "[daemon.x]\n",
               "t.ini:8: [daemon.x]: unknown section (expected [daemon], [listen], [store], "
               "[model.NAME] or [webhook.NAME])");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_err("[daemon]\nworkers = 2\n\nworkers = 3\n" BASE,
               "t.ini:4: [daemon] workers: duplicate key (first set on line 2)");
    /* Also when the first value was bad: both lines are reported. */
    expect_err(BASE "alpha = 2\nalpha = 0.5\n",
               "t.ini:8: [model.m] alpha: '2' is out of range (0, 1)\n"
               "t.ini:9: [model.m] alpha: duplicate key (first set on line 8)");
}

static void test_duplicate_section(void **state)
{
    (void)state;
    expect_err("[daemon]\n[store]\ndsn = x\n[daemon]\nworkers = 1\n"
               "[model.m]\ndim = 4\nreference.size = 10\nwindow.size = 5\ndetectors = mmd\n",
               "t.ini:4: [daemon]: duplicate section (first on line 1)");
    expect_err(BASE "[model.m]\ndim = 9\n", "t.ini:8: [model.m]: duplicate section (first on line 3)");
    /* Models and webhooks have separate name spaces. */
    struct conf *c = load_ok(BASE "on_drift = m\n[webhook.m]\nurl = http://h\nsecret = " SECRET24 "\n");
    assert_string_equal(c->models[0].on_drift, "m");
    conf_free(c);
}

static void test_section_names(void **state)
{
    char text[512];
    char name[80];
    (void)state;
    expect_err(BASE "[model]\n",
               "t.ini:8: [model]: section needs a name of 1..64 of A-Z a-z 0-9 _ . -: [model.NAME]");
    expect_err(BASE "[webhook.a b]\n",
               "t.ini:8: [webhook.a b]: section needs a name of 1..64 of A-Z a-z 0-9 _ . -: "
               "[webhook.NAME]");

    /* 64 characters is allowed and kept whole (inih itself would cut the
     * section name at 49 bytes); 65 is not. */
    memset(name, 'n', 64);
    name[64] = '\0';
    snprintf(text, sizeof text,
             "[store]\ndsn = x\n[model.%s]\ndim = 4\nreference.size = 10\nwindow.size = 5\n"
             "detectors = mmd\n[model.%.48s]\ndim = 2\nreference.size = 10\nwindow.size = 5\n"
             "detectors = mmd\n", name, name);
    struct conf *c = load_ok(text);
    assert_int_equal(c->n_models, 2);
    assert_string_equal(c->models[0].name, name);
    assert_int_equal(conf_model_find(c, name)->dim, 4);
    assert_int_equal(strlen(c->models[1].name), 48);
    conf_free(c);

    snprintf(text, sizeof text, BASE "[model.%sx]\n", name);
    struct conf *bad = NULL;
    char err[512];
    assert_int_equal(conf_load_string(text, "t.ini", &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.ini:8: [model.nnn"));
    assert_non_null(strstr(err, "section needs a name of 1..64"));
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_err("[model.m]\ndim = 4\nreference.size = 10\nwindow.size = 5\ndetectors = mmd\n",
               "t.ini: [store] dsn: required key is missing");
    expect_err("[store]\ndsn = x\n[model.m]\nwindow.size = 5\n",
               "t.ini: [model.m] dim: required key is missing\n"
               "t.ini: [model.m] reference.size: required key is missing\n"
               "t.ini: [model.m] detectors: required key is missing");
    expect_err(BASE "[webhook.w]\nurl = http://h\n",
               "t.ini: [webhook.w] secret: required key is missing");
    /* Required means non-empty, too. */
    expect_err("[store]\ndsn =\n[model.m]\ndim = 4\nreference.size = 10\nwindow.size = 5\n"
               "detectors = mmd\n",
               "t.ini:2: [store] dsn: must not be empty");
}

static void test_no_models(void **state)
{
    (void)state;
    expect_err("[store]\ndsn = x\n", "t.ini: no [model.NAME] section: at least one model is required");
    expect_err("", "t.ini: [store] dsn: required key is missing\n"
                   "t.ini: no [model.NAME] section: at least one model is required");
}

/* --- values -------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t us;
    } cases[] = {
        { "0", 0, 0 },
        { "30", 0, 30 * SEC_US },
        { "30s", 0, 30 * SEC_US },
        { "250ms", 0, 250000 },
        { "10us", 0, 10 },
        { "5m", 0, 300 * SEC_US },
        { "1h", 0, 3600 * SEC_US },
        { "2d", 0, 2 * 86400 * SEC_US },
        { "0ms", 0, 0 },
        { "18446744073709551615us", 0, UINT64_MAX },
        { "18446744073709551616us", -ERANGE, 0 },
        { "213503983d", -ERANGE, 0 },
        { "", -EINVAL, 0 },
        { "s", -EINVAL, 0 },
        { "-1s", -EINVAL, 0 },
        { "1.5h", -EINVAL, 0 },
        { "5 m", -EINVAL, 0 },
        { "5M", -EINVAL, 0 },
        { "5min", -EINVAL, 0 },
        { "1h30m", -EINVAL, 0 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t us = 12345;
        int rc = conf_parse_duration(cases[i].s, &us);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
        assert_int_equal(us, rc ? 12345 : cases[i].us);
    }
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t bytes;
    } cases[] = {
        { "0", 0, 0 },
        { "512", 0, 512 },
        { "64k", 0, 65536 },
        { "64K", 0, 65536 },
        { "1M", 0, 1048576 },
        { "3m", 0, 3145728 },
        { "1G", 0, 1073741824 },
        { "17179869184G", -ERANGE, 0 },
        { "", -EINVAL, 0 },
        { "k", -EINVAL, 0 },
        { "1.5M", -EINVAL, 0 },
        { "1MB", -EINVAL, 0 },
        { "1T", -EINVAL, 0 },
        { " 1", -EINVAL, 0 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t bytes = 777;
        int rc = conf_parse_size(cases[i].s, &bytes);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
        assert_int_equal(bytes, rc ? 777 : cases[i].bytes);
    }
}

static void test_bad_numbers(void **state)
{
    (void)state;
    expect_err("[daemon]\nworkers = four\n" BASE, "t.ini:2: [daemon] workers: 'four' is not a whole number");
    expect_err("[daemon]\nworkers = -1\n" BASE, "t.ini:2: [daemon] workers: '-1' is not a whole number");
    expect_err("[daemon]\nworkers = 1025\n" BASE, "t.ini:2: [daemon] workers: '1025' is out of range 0..1024");
    expect_err(BASE "dim = 4\n", "t.ini:8: [model.m] dim: duplicate key (first set on line 4)");
    expect_err(BASE "seed = 18446744073709551616\n",
               "t.ini:8: [model.m] seed: '18446744073709551616' is out of range 0..18446744073709551615");
    expect_err(BASE "alpha = 0\n", "t.ini:8: [model.m] alpha: '0' is out of range (0, 1)");
    expect_err(BASE "alpha = 0.05x\n", "t.ini:8: [model.m] alpha: '0.05x' is not a number");
    expect_err(BASE "alpha = nan\n", "t.ini:8: [model.m] alpha: 'nan' is not a number");
    expect_err(BASE "effect_floor = inf\n", "t.ini:8: [model.m] effect_floor: 'inf' is not a number");
    expect_err(BASE "effect_floor = -0.5\n",
               "t.ini:8: [model.m] effect_floor: '-0.5' is out of range >= 0");
    expect_err(BASE "classifier.holdout = 1\n",
               "t.ini:8: [model.m] classifier.holdout: '1' is out of range (0, 1)");
    expect_err(BASE "health.collapse_drop = 0\n",
               "t.ini:8: [model.m] health.collapse_drop: '0' is out of range (0, 1]");
    expect_err(BASE "scores.psi_threshold = 0\n",
               "t.ini:8: [model.m] scores.psi_threshold: '0' is out of range > 0");
    expect_err(BASE "projection.dim = 65537\n",
               "t.ini:8: [model.m] projection.dim: '65537' is out of range 0..65536");
    expect_err(BASE "centroid.threshold = 2.0001\n",
               "t.ini:8: [model.m] centroid.threshold: '2.0001' is out of range (0, 2]");
    expect_err(BASE "window.interval = 31d\n",
               "t.ini:8: [model.m] window.interval: '31d' is out of range 0..30d");
    expect_err(BASE "window.interval = soon\n",
               "t.ini:8: [model.m] window.interval: 'soon' is not a duration such as 250ms, 30s, 5m, 1h or 2d");
    expect_err("[listen]\nmax_line = 512\n" BASE,
               "t.ini:2: [listen] max_line: '512' is out of range 1k..64M");
    expect_err("[listen]\nmax_line = 65M\n" BASE,
               "t.ini:2: [listen] max_line: '65M' is out of range 1k..64M");
    expect_err("[listen]\nmax_line = big\n" BASE,
               "t.ini:2: [listen] max_line: 'big' is not a size such as 512, 64k or 1M");
    expect_err("[store]\nquery_timeout = 10ms\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
               "window.size = 5\ndetectors = mmd\n",
               "t.ini:2: [store] query_timeout: '10ms' is out of range 100ms..1h");

    struct conf *c = load_ok("[listen]\nmax_line = 64M\n" BASE "alpha = 1e-3\ncentroid.threshold = 2\n");
    assert_int_equal(c->max_line, 64u << 20);
    assert_true(c->models[0].alpha == 0.001);
    conf_free(c);
}

/* Slice, alarm, label and calibration keys: ranges and the rules that
 * tie them to other keys. */
static void test_slice_and_decision_keys(void **state)
{
    (void)state;
    expect_err(BASE "alarm.k = 3\nalarm.m = 2\n",
               "t.ini:8: [model.m] alarm.k: 3 is larger than alarm.m (2)");
    expect_err(BASE "alarm.m = 65\n", "t.ini:8: [model.m] alarm.m: '65' is out of range 1..64");
    expect_err(BASE "reference.min_size = 11\n",
               "t.ini:8: [model.m] reference.min_size: 11 is larger than reference.size (10)");
    expect_err(BASE "effect_floor.by_test = mmd\n",
               "t.ini:8: [model.m] effect_floor.by_test: 'mmd' is not test:number");
    expect_err(BASE "effect_floor.by_test = mmd:-1\n",
               "t.ini:8: [model.m] effect_floor.by_test: 'mmd:-1': the floor is not a number >= 0");
    expect_err(BASE "effect_floor.by_test = m d:1\n",
               "t.ini:8: [model.m] effect_floor.by_test: 'm d:1' is not test:number");
    expect_err(BASE "scores.width = 4097\n",
               "t.ini:8: [model.m] scores.width: '4097' is out of range 0..4096");
    expect_err(BASE "labels.ttl = 0\n", "t.ini:8: [model.m] labels.ttl: '0' is out of range 1s..30d");
    expect_err("[store]\njournal_max = 1k\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
               "window.size = 5\ndetectors = mmd\n",
               "t.ini:2: [store] journal_max: '1k' is out of range 1M..2G");

    struct conf *c = load_ok("[store]\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
                             "window.size = 5\ndetectors = calibration\nscores.width = 3\n"
                             "effect_floor = 0.5\neffect_floor.by_test = ks_dims:0.1, ks:0.2\n");
    const struct conf_model *m = &c->models[0];
    /* Exact name first, then the detector before '_', then the default. */
    assert_true(conf_effect_floor(m, "ks_dims") == 0.1);
    assert_true(conf_effect_floor(m, "ks_scores") == 0.2);
    assert_true(conf_effect_floor(m, "mmd") == 0.5);
    conf_free(c);
}

static void test_enums(void **state)
{
    (void)state;
    expect_err("[daemon]\nlog_level = verbose\n" BASE,
               "t.ini:2: [daemon] log_level: 'verbose' is not one of: err, warning, notice, info, debug");
    expect_err(BASE "correction = holm\n",
               "t.ini:8: [model.m] correction: 'holm' is not one of: bh, bonferroni, none");
    expect_err(BASE "storage = bfloat16\n",
               "t.ini:8: [model.m] storage: 'bfloat16' is not one of: float32, float16");
    expect_err("[store]\npersist_reference = all\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
               "window.size = 5\ndetectors = mmd\n",
               "t.ini:2: [store] persist_reference: 'all' is not one of: raw, projected, none");
    struct conf *c = load_ok("[daemon]\nlog_level = Warning\n" BASE);
    assert_int_equal(c->log_level, CONF_LOG_WARNING);
    conf_free(c);
}

static void test_detectors(void **state)
{
    (void)state;
    struct conf *c = load_ok("[store]\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
                             "window.size = 5\ndetectors = classifier, health\n");
    assert_int_equal(c->models[0].detectors, CONF_DET_CLASSIFIER | CONF_DET_HEALTH);
    conf_free(c);

    static const char *const head = "[store]\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
                                    "window.size = 5\n";
    char text[512];
    snprintf(text, sizeof text, "%sdetectors = mmd, psi\n", head);
    expect_err(text, "t.ini:7: [model.m] detectors: unknown name 'psi' (known: mmd, centroid, energy, "
                     "ks_dims, calibration, health, scores, classifier)");
    snprintf(text, sizeof text, "%sdetectors = mmd, energy, mmd\n", head);
    expect_err(text, "t.ini:7: [model.m] detectors: 'mmd' is listed twice");
    snprintf(text, sizeof text, "%sdetectors =\n", head);
    expect_err(text, "t.ini:7: [model.m] detectors: needs at least 1 name");
    snprintf(text, sizeof text, "%sdetectors = mmd,,energy\n", head);
    expect_err(text, "t.ini:7: [model.m] detectors: empty item in the list");
}

static void test_stream_keys(void **state)
{
    (void)state;
    expect_err(BASE "stream.detectors = page_hinkley\n",
               "t.ini:8: [model.m] stream.detectors: the streaming detectors watch predicted "
               "scores: set scores.width");
    expect_err(BASE "scores.width = 1\nstream.detectors = cusum\n",
               "t.ini:9: [model.m] stream.detectors: unknown name 'cusum' (known: page_hinkley, "
               "adwin)");
    expect_err(BASE "stream.signals = score, latency\n",
               "t.ini:8: [model.m] stream.signals: unknown name 'latency' (known: score, error)");
    expect_err(BASE "stream.signals =\n", "t.ini:8: [model.m] stream.signals: needs at least 1 name");
    expect_err(BASE "stream.ph.forget = 0\n",
               "t.ini:8: [model.m] stream.ph.forget: '0' is out of range (0, 1]");
    expect_err(BASE "stream.ph.forget = 1.5\n",
               "t.ini:8: [model.m] stream.ph.forget: '1.5' is out of range (0, 1]");
    expect_err(BASE "stream.ph.delta = 0\n",
               "t.ini:8: [model.m] stream.ph.delta: '0' is out of range > 0");
    expect_err(BASE "stream.ph.threshold = -5\n",
               "t.ini:8: [model.m] stream.ph.threshold: '-5' is out of range > 0");
    expect_err(BASE "stream.ph.min_samples = 0\n",
               "t.ini:8: [model.m] stream.ph.min_samples: '0' is out of range 1..100000000");
    expect_err(BASE "stream.ph.direction = sideways\n",
               "t.ini:8: [model.m] stream.ph.direction: 'sideways' is not one of: both, up, down");
    expect_err(BASE "stream.adwin.delta = 1\n",
               "t.ini:8: [model.m] stream.adwin.delta: '1' is out of range (0, 1)");
    expect_err(BASE "stream.adwin.max_buckets = 17\n",
               "t.ini:8: [model.m] stream.adwin.max_buckets: '17' is out of range 2..16");
    expect_err(BASE "stream.adwin.clock = 0\n",
               "t.ini:8: [model.m] stream.adwin.clock: '0' is out of range 1..1000000");
    expect_err(BASE "stream.alarm_interval = soon\n",
               "t.ini:8: [model.m] stream.alarm_interval: 'soon' is not a duration such as "
               "250ms, 30s, 5m, 1h or 2d");

    struct conf *c = load_ok(BASE "scores.width = 3\nstream.detectors = ADWIN\n"
                             "stream.signals = score\n");
    assert_int_equal(c->models[0].stream_detectors, CONF_STREAM_ADWIN);
    assert_int_equal(c->models[0].stream_signals, CONF_SIGNAL_SCORE);
    conf_free(c);
}

static void test_slice_by(void **state)
{
    (void)state;
    expect_err(BASE "slice_by = a,b,c,d,e,f,g,h,i\n", "t.ini:8: [model.m] slice_by: more than 8 items");
    expect_err(BASE "slice_by = region, dev ice\n",
               "t.ini:8: [model.m] slice_by: 'dev ice' is not a name (1..64 of A-Z a-z 0-9 _ . -)");
    expect_err(BASE "slice_by = region, region\n", "t.ini:8: [model.m] slice_by: 'region' is listed twice");
    expect_err(BASE "slice_by = region,\n", "t.ini:8: [model.m] slice_by: empty item in the list");
    struct conf *c = load_ok(BASE "slice_by = a,b,c,d,e,f,g,h\n");
    assert_int_equal(c->models[0].n_slice_by, 8);
    assert_string_equal(c->models[0].slice_by[7], "h");
    conf_free(c);
}

static void test_window_rules(void **state)
{
    static const char *const head = "[store]\ndsn = x\n[model.m]\ndim = 4\nreference.size = 10\n"
                                    "detectors = mmd\n";
    char text[512];
    (void)state;
    snprintf(text, sizeof text, "%s", head);
    expect_err(text, "t.ini: [model.m] window.size: set window.size, window.interval or both");
    snprintf(text, sizeof text, "%swindow.interval = 0s\n", head);
    expect_err(text, "t.ini:7: [model.m] window.size: set window.size, window.interval or both");
    snprintf(text, sizeof text, "%swindow.min_size = 1\nwindow.size = 2\n", head);
    expect_err(text, "t.ini:7: [model.m] window.min_size: '1' is out of range 2..10000000");
    /* A bad window.size is reported once, not again as "not set". */
    snprintf(text, sizeof text, "%swindow.size = lots\n", head);
    expect_err(text, "t.ini:7: [model.m] window.size: 'lots' is not a whole number");
}

static void test_on_drift(void **state)
{
    (void)state;
    expect_err(BASE "on_drift = retrain\n", "t.ini:8: [model.m] on_drift: no [webhook.retrain] section");
    expect_err(BASE "on_drift = re train\n",
               "t.ini:8: [model.m] on_drift: 're train' is not a name (1..64 of A-Z a-z 0-9 _ . -)");
    /* The webhook may come before or after the model. */
    struct conf *c = load_ok("[webhook.retrain]\nurl = http://h/x\nsecret = " SECRET24 "\n" BASE
                             "on_drift = retrain\n");
    assert_string_equal(c->models[0].on_drift, "retrain");
    assert_ptr_equal(conf_webhook_find(c, c->models[0].on_drift), &c->webhooks[0]);
    conf_free(c);
    c = load_ok(BASE "on_drift =\n");
    assert_null(c->models[0].on_drift);
    conf_free(c);
}

static void test_listen_addresses(void **state)
{
    (void)state;
    struct conf *c = load_ok("[listen]\ningest = tcp://[2001:db8::1]:1, tcp://host-1.example:65535, "
                             "unix:/run/x.sock\nhttp = unix:/run/y.sock\n" BASE);
    assert_int_equal(c->n_ingest, 3);
    assert_string_equal(c->http[0], "unix:/run/y.sock");
    conf_free(c);

    static const char *const bad[] = {
        "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://:80",
        "tcp://::1:80", "tcp://[::1]80", "tcp://[zz]:80", "tcp://a_b:80", "tcp://h:8x",
        "udp://h:1", "127.0.0.1:7070",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, "[listen]\ningest = %s\n" BASE, bad[i]);
        snprintf(want, sizeof want, "t.ini:2: [listen] ingest: '%s' is not tcp://HOST:PORT or unix:/path",
                 bad[i]);
        expect_err(text, want);
    }
    expect_err("[listen]\ningest = unix:run/x\n" BASE,
               "t.ini:2: [listen] ingest: 'unix:run/x': a unix socket needs an absolute path under "
               "108 bytes");
    expect_err("[listen]\ningest =\n" BASE, "t.ini:2: [listen] ingest: needs at least 1 item");
    expect_err("[listen]\ningest = unix:/a, tcp://h:1\nhttp = tcp://h:1\n" BASE,
               "t.ini:3: [listen] http: 'tcp://h:1' is also an ingest address");
}

static void test_url(void **state)
{
    (void)state;
    static const char *const tail = "\nsecret = " SECRET24 "\n";
    char text[512];
    snprintf(text, sizeof text, BASE "[webhook.w]\nurl = ftp://h/x%s", tail);
    expect_err(text, "t.ini:9: [webhook.w] url: 'ftp://h/x' is not an http:// or https:// URL");
    snprintf(text, sizeof text, BASE "[webhook.w]\nurl = https:///x%s", tail);
    expect_err(text, "t.ini:9: [webhook.w] url: 'https:///x' has no host");
    snprintf(text, sizeof text, BASE "[webhook.w]\nurl = https://h/a b%s", tail);
    expect_err(text, "t.ini:9: [webhook.w] url: 'https://h/a b' contains a space");
    snprintf(text, sizeof text, BASE "[webhook.w]\nurl = HTTPS://h:8443/a?b=c#d%s", tail);
    struct conf *c = load_ok(text);
    assert_string_equal(c->webhooks[0].url, "HTTPS://h:8443/a?b=c#d");
    conf_free(c);
}

static void test_whsec(void **state)
{
    static const struct {
        const char *secret;
        const char *why; /* NULL = valid */
    } cases[] = {
        { SECRET24, NULL },
        /* 32 bytes with one '=' of padding; 64 bytes with none. */
        { "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", NULL },
        { "whsec_" "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==",
          NULL },
        { "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a secret does not start with whsec_" },
        { "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a secret does not start with whsec_" },
        { "whsec_", "a secret is not valid base64 after whsec_" },
        { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "a secret is not valid base64 after whsec_" },
        { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w", "a secret is not valid base64 after whsec_" },
        { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw", "a secret is not valid base64 after whsec_" },
        { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL===", "a secret is not valid base64 after whsec_" },
        { "whsec_c2hvcnQ=", "a secret decodes to 5 bytes, not 24..64" },
        { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqrTwjUPD8ILPZ"
          "Io2LaLaSw",
          "a secret decodes to 72 bytes, not 24..64" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512], want[256];
        snprintf(text, sizeof text, BASE "[webhook.w]\nurl = http://h\nsecret = %s\n", cases[i].secret);
        if (!cases[i].why) {
            struct conf *c = load_ok(text);
            assert_string_equal(c->webhooks[0].secrets[0], cases[i].secret);
            conf_free(c);
            continue;
        }
        snprintf(want, sizeof want, "t.ini:10: [webhook.w] secret: %s", cases[i].why);
        expect_err(text, want);
    }
    expect_err(BASE "[webhook.w]\nurl = http://h\nsecret = " SECRET24 ", " SECRET24 "\n",
               "t.ini:10: [webhook.w] secret: a secret is listed twice");
}

/* Values of token, dsn and secret may end up in logs through the error
 * message, so they are never quoted. */
static void test_webhook_delivery_keys(void **state)
{
    (void)state;
#define HOOK BASE "[webhook.w]\nurl = http://h\nsecret = " SECRET24 "\n"
    struct conf *c = load_ok(HOOK "events = embedding.collapse\nallow_addresses = link_local\n"
                                  "retry.initial = 20ms\nretry.max_delay = 20ms\n");
    assert_int_equal(c->webhooks[0].events, CONF_EV_COLLAPSE);
    assert_int_equal(c->webhooks[0].allow_addresses, CONF_ALLOW_LINK_LOCAL);
    assert_int_equal(c->webhooks[0].retry_initial_us, 20000);
    conf_free(c);
    expect_err(HOOK "events =\n", "t.ini:11: [webhook.w] events: needs at least 1 name");
    expect_err(HOOK "events = drift.detected, test\n",
               "t.ini:11: [webhook.w] events: unknown name 'test' (known: drift.detected, "
               "calibration.degraded, embedding.collapse, stream.alarm)");
    expect_err(HOOK "allow_addresses = public\n",
               "t.ini:11: [webhook.w] allow_addresses: unknown name 'public' (known: loopback, "
               "private, link_local)");
    expect_err(HOOK "retry.initial = 5ms\n",
               "t.ini:11: [webhook.w] retry.initial: '5ms' is out of range 10ms..1d");
    expect_err(HOOK "retry.max_delay = 2s\nretry.initial = 3s\n",
               "t.ini:12: [webhook.w] retry.initial: longer than retry.max_delay");
    expect_err(HOOK "retry.max_delay = 2s\n",
               "t.ini: [webhook.w] retry.initial: longer than retry.max_delay");
    expect_err(HOOK "ca_file = ca.pem\n", "t.ini:11: [webhook.w] ca_file: 'ca.pem' is not an absolute path");
    expect_err(BASE "[daemon]\nwebhook_concurrency = 0\n",
               "t.ini:9: [daemon] webhook_concurrency: '0' is out of range 1..1024");
#undef HOOK
}

static void test_secrets_not_echoed(void **state)
{
    struct conf *c = NULL;
    char err[2048];
    (void)state;
    assert_int_equal(conf_load_string("[listen]\ntoken = hunter2 hunter3\n" BASE
                                      "[webhook.w]\nurl = http://h\nsecret = whsec_hunter4\n",
                                      "t.ini", &c, err, sizeof err),
                     -1);
    assert_string_equal(err, "t.ini:2: [listen] token: must be printable ASCII without spaces\n"
                             "t.ini:12: [webhook.w] secret: a secret is not valid base64 after whsec_");
    assert_null(strstr(err, "hunter"));
}

/* --- error reporting ----------------------------------------------------- */

static void test_errors_sorted_and_capped(void **state)
{
    struct conf *c = NULL;
    char err[4096];
    (void)state;
    /* The missing-webhook error (line 3) is found after the parse errors
     * below it, yet comes first. */
    expect_err("[store]\ndsn = x\n[model.m]\non_drift = w\ndim = 4\nreference.size = 10\n"
               "window.size = 5\ndetectors = mmd\nalpha = 7\n[listen]\nmax_line = 1\n",
               "t.ini:4: [model.m] on_drift: no [webhook.w] section\n"
               "t.ini:9: [model.m] alpha: '7' is out of range (0, 1)\n"
               "t.ini:11: [listen] max_line: '1' is out of range 1k..64M");

    assert_int_equal(conf_load_string("[daemon]\na=1\nb=1\nc=1\nd=1\ne=1\nf=1\ng=1\nh=1\ni=1\nj=1\n" BASE,
                                      "t.ini", &c, err, sizeof err),
                     -1);
    assert_string_equal(err, "t.ini:2: [daemon] a: unknown key\n"
                             "t.ini:3: [daemon] b: unknown key\n"
                             "t.ini:4: [daemon] c: unknown key\n"
                             "t.ini:5: [daemon] d: unknown key\n"
                             "t.ini:6: [daemon] e: unknown key\n"
                             "t.ini:7: [daemon] f: unknown key\n"
                             "t.ini:8: [daemon] g: unknown key\n"
                             "t.ini:9: [daemon] h: unknown key\n"
                             "t.ini: 2 more errors not shown");
}

static void test_small_error_buffer(void **state)
{
    struct conf *c = NULL;
    char err[16];
    (void)state;
    memset(err, 'x', sizeof err);
    assert_int_equal(conf_load_string("[daemon]\nworkers = x\n", "t.ini", &c, err, sizeof err), -1);
    assert_string_equal(err, "t.ini:2: [daemo");
    assert_int_equal(conf_load_string("[daemon]\nworkers = x\n", "t.ini", &c, NULL, 0), -1);
    assert_null(c);
}

static void test_file_errors(void **state)
{
    struct conf *c = (struct conf *)1;
    char err[2048];
    char path[] = "/tmp/test_conf_XXXXXX";
    (void)state;

    assert_int_equal(conf_load(CONF_DATA_DIR "/does-not-exist.ini", &c, err, sizeof err), -ENOENT);
    assert_null(c);
    assert_string_equal(err, CONF_DATA_DIR "/does-not-exist.ini: No such file or directory");
    assert_int_equal(conf_load(CONF_DATA_DIR, &c, err, sizeof err), -EISDIR);

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[daemon]\0\n", 10), 10);
    close(fd);
    assert_int_equal(conf_load(path, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, ": contains a NUL byte"));
    unlink(path);
    strcpy(path, "/tmp/test_conf_XXXXXX");

    /* Files and strings above 1 MiB are refused before parsing. */
    char *big = malloc((1 << 20) + 2);
    assert_non_null(big);
    memset(big, '\n', (1 << 20) + 1);
    big[(1 << 20) + 1] = '\0';
    assert_int_equal(conf_load_string(big, "big.ini", &c, err, sizeof err), -EFBIG);
    assert_string_equal(err, "big.ini: larger than 1048576 bytes");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, big, (1 << 20) + 1), (1 << 20) + 1);
    close(fd);
    assert_int_equal(conf_load(path, &c, err, sizeof err), -EFBIG);
    unlink(path);
    big[1 << 20] = '\0';
    assert_int_equal(conf_load_string(big, "big.ini", &c, err, sizeof err), -1);
    assert_string_equal(err, "big.ini: [store] dsn: required key is missing\n"
                             "big.ini: no [model.NAME] section: at least one model is required");
    free(big);

    /* The path given is what messages name. */
    assert_int_equal(conf_load(CONF_DATA_DIR "/bad_value.ini", &c, err, sizeof err), -1);
    assert_string_equal(err, CONF_DATA_DIR "/bad_value.ini:3: [daemon] log_level: 'loud' is not one "
                             "of: err, warning, notice, info, debug\n"
                        CONF_DATA_DIR "/bad_value.ini: [store] dsn: required key is missing\n"
                        CONF_DATA_DIR "/bad_value.ini: no [model.NAME] section: at least one model "
                             "is required");
}

/* --- reload -------------------------------------------------------------- */

static void test_restart_keys(void **state)
{
    char buf[256];
    (void)state;
    struct conf *a = load_ok("[webhook.w]\nurl = http://a\nsecret = " SECRET24 "\n" BASE
                             "[model.gone]\ndim = 2\nreference.size = 10\nwindow.size = 5\n"
                             "detectors = mmd\n");
    struct conf *b = load_ok("[webhook.w]\nurl = http://b\nsecret = " SECRET24 "\n" BASE);
    assert_int_equal(conf_restart_keys(a, b, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(conf_restart_keys(a, a, buf, sizeof buf), 0);
    conf_free(b);

    /* Reloadable changes (log_level, alpha, window.size, and dim and
     * slice_by, which start the model over) are not listed; models only in
     * one of the two (new) are not compared. */
    b = load_ok("[daemon]\nworkers = 3\nlog_level = debug\n[listen]\nhttp =\n"
                "[store]\ndsn = y\n[model.m]\ndim = 8\nreference.size = 10\nwindow.size = 6\n"
                "detectors = mmd\nslice_by = r\nalpha = 0.2\n"
                "[model.new]\ndim = 2\nreference.size = 10\nwindow.size = 5\ndetectors = mmd\n");
    assert_int_equal(conf_restart_keys(a, b, buf, sizeof buf), 3);
    assert_string_equal(buf, "daemon.workers, listen.http, store.dsn");
    /* Truncated output still counts every key. */
    assert_int_equal(conf_restart_keys(a, b, buf, 20), 3);
    assert_string_equal(buf, "daemon.workers, lis");
    assert_int_equal(conf_restart_keys(a, b, NULL, 0), 3);
    conf_free(a);
    conf_free(b);
}

static void test_free_null(void **state)
{
    (void)state;
    conf_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_example_has_every_key),
        cmocka_unit_test(test_print_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_webhook_defaults),
        cmocka_unit_test(test_comments_and_whitespace),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_duplicate_section),
        cmocka_unit_test(test_section_names),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_no_models),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_slice_and_decision_keys),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_detectors),
        cmocka_unit_test(test_stream_keys),
        cmocka_unit_test(test_slice_by),
        cmocka_unit_test(test_window_rules),
        cmocka_unit_test(test_on_drift),
        cmocka_unit_test(test_listen_addresses),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_whsec),
        cmocka_unit_test(test_webhook_delivery_keys),
        cmocka_unit_test(test_secrets_not_echoed),
        cmocka_unit_test(test_errors_sorted_and_capped),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_restart_keys),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

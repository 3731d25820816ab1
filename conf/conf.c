/* conf: INI text -> struct conf. One static key table drives parsing,
 * defaults, validation, restart detection and --print-defaults; rules that
 * span several keys run after the table pass. */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define MS     UINT64_C(1000)
#define SEC    (1000 * MS)
#define MINUTE (60 * SEC)
#define HOUR   (60 * MINUTE)
#define DAY    (24 * HOUR)
#define KIB    UINT64_C(1024)
#define MIB    (1024 * KIB)
#define GIB    (1024 * MIB)

/* Lists are short; parse_list splits into an array of this many items. */
#define LIST_MAX   16
#define MAX_ERRORS 8
#define ERROR_MAX  320
#define FILE_MAX   MIB

enum sect_kind { SK_DAEMON, SK_LISTEN, SK_STORE, SK_MODEL, SK_WEBHOOK, SK_COUNT };

static const char *const sect_names[SK_COUNT] = { "daemon", "listen", "store", "model", "webhook" };
static const char *const sect_docs[SK_COUNT] = {
    "process-wide settings",
    "sockets for records and for the HTTP side port",
    "PostgreSQL, where every result is written",
    "one section per monitored model",
    "one section per webhook endpoint, named by a model's on_drift",
};

/* Storage per type: STRING char *, LIST char ** plus a size_t count,
 * UINT/SIZE/FLAGS unsigned, ENUM an enum (unsigned-sized), U64/DURATION
 * uint64_t (durations in microseconds), DOUBLE double. */
enum key_type {
    KT_STRING, KT_LIST, KT_UINT, KT_U64, KT_DOUBLE, KT_DURATION, KT_SIZE, KT_ENUM, KT_FLAGS,
};

static const char *const type_names[] = {
    [KT_STRING] = "string", [KT_LIST] = "list", [KT_UINT] = "integer", [KT_U64] = "integer",
    [KT_DOUBLE] = "number", [KT_DURATION] = "duration", [KT_SIZE] = "size",
    [KT_ENUM] = "one of", [KT_FLAGS] = "any of",
};

struct name_val {
    const char *name;
    unsigned val;
};

/* Extra validation of a string value or of each list item. Returns false
 * with a reason in why. */
typedef bool check_fn(const char *s, char *why, size_t whylen);

struct key_def {
    enum sect_kind sect;
    const char *name;
    enum key_type type;
    size_t off;                   /* into struct conf, conf_model or conf_webhook */
    size_t count_off;             /* KT_LIST: its size_t item count */
    const char *def;              /* default as config text; NULL = required */
    uint64_t min, max;            /* value; string length; list or flag items */
    double dmin, dmax;            /* KT_DOUBLE */
    bool dmin_open, dmax_open;    /* KT_DOUBLE: bound excluded */
    bool reload;                  /* takes effect on reload, no restart needed */
    bool secret;                  /* never quote the value in messages */
    const struct name_val *names; /* KT_ENUM, KT_FLAGS: NULL-terminated */
    check_fn *check;
    const char *doc;
};

/* Enum fields are written through an unsigned pointer. */
_Static_assert(sizeof(enum conf_log_level) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum conf_direction) == sizeof(unsigned), "enum size");

/* offsetof that also has the compiler compare the field's type with the
 * storage type written in the entry (see enum key_type), so a table entry
 * pointing at the wrong field draws a warning instead of scribbling. */
#define AT(st, f, t) (offsetof(st, f) + 0 * sizeof((t *)0 == &((st *)0)->f))
#define C_(f, t) AT(struct conf, f, t)
#define M_(f, t) AT(struct conf_model, f, t)
#define W_(f, t) AT(struct conf_webhook, f, t)

static const struct name_val log_levels[] = {
    { "err", CONF_LOG_ERR }, { "warning", CONF_LOG_WARNING }, { "notice", CONF_LOG_NOTICE },
    { "info", CONF_LOG_INFO }, { "debug", CONF_LOG_DEBUG }, { NULL, 0 },
};
static const struct name_val persist_modes[] = {
    { "raw", CONF_PERSIST_RAW }, { "projected", CONF_PERSIST_PROJECTED },
    { "none", CONF_PERSIST_NONE }, { NULL, 0 },
};
static const struct name_val storages[] = {
    { "float32", CONF_STORAGE_FLOAT32 }, { "float16", CONF_STORAGE_FLOAT16 }, { NULL, 0 },
};
static const struct name_val corrections[] = {
    { "bh", CONF_CORR_BH }, { "bonferroni", CONF_CORR_BONFERRONI },
    { "none", CONF_CORR_NONE }, { NULL, 0 },
};
static const struct name_val detector_names[] = {
    { "mmd", CONF_DET_MMD }, { "centroid", CONF_DET_CENTROID }, { "energy", CONF_DET_ENERGY },
    { "ks_dims", CONF_DET_KS_DIMS }, { "calibration", CONF_DET_CALIBRATION },
    { "health", CONF_DET_HEALTH }, { "scores", CONF_DET_SCORES },
    { "classifier", CONF_DET_CLASSIFIER }, { NULL, 0 },
};
static const struct name_val event_names[] = {
    { "drift.detected", CONF_EV_DRIFT }, { "calibration.degraded", CONF_EV_CALIBRATION },
    { "embedding.collapse", CONF_EV_COLLAPSE }, { "stream.alarm", CONF_EV_STREAM },
    { NULL, 0 },
};
static const struct name_val stream_detector_names[] = {
    { "page_hinkley", CONF_STREAM_PH }, { "adwin", CONF_STREAM_ADWIN }, { NULL, 0 },
};
static const struct name_val signal_names[] = {
    { "score", CONF_SIGNAL_SCORE }, { "error", CONF_SIGNAL_ERROR }, { NULL, 0 },
};
static const struct name_val directions[] = {
    { "both", CONF_DIR_BOTH }, { "up", CONF_DIR_UP }, { "down", CONF_DIR_DOWN }, { NULL, 0 },
};
static const struct name_val address_ranges[] = {
    { "loopback", CONF_ALLOW_LOOPBACK }, { "private", CONF_ALLOW_PRIVATE },
    { "link_local", CONF_ALLOW_LINK_LOCAL }, { NULL, 0 },
};

static check_fn check_path, check_listen, check_token, check_name, check_url, check_whsec,
    check_floor;

static const struct key_def keys[] = {
    /* [daemon] */
    { .sect = SK_DAEMON, .name = "state_dir", .type = KT_STRING, .off = C_(state_dir, char *),
      .def = "/var/lib/driftd", .min = 1, .max = PATH_MAX - 1, .check = check_path,
      .doc = "directory for the spill journal and other local state" },
    { .sect = SK_DAEMON, .name = "workers", .type = KT_UINT, .off = C_(workers, unsigned),
      .def = "0", .min = 0, .max = 1024,
      .doc = "detector worker threads; 0 = one per CPU" },
    { .sect = SK_DAEMON, .name = "log_level", .type = KT_ENUM, .off = C_(log_level, unsigned),
      .def = "info", .names = log_levels, .reload = true,
      .doc = "least severe message that is logged" },
    { .sect = SK_DAEMON, .name = "shutdown_timeout", .type = KT_DURATION,
      .off = C_(shutdown_timeout_us, uint64_t), .def = "30s", .min = 0, .max = HOUR, .reload = true,
      .doc = "on SIGTERM, how long to drain windows and the store before exiting" },
    { .sect = SK_DAEMON, .name = "webhook_concurrency", .type = KT_UINT,
      .off = C_(webhook_concurrency, unsigned), .def = "16", .min = 1, .max = 1024, .reload = true,
      .doc = "webhook delivery attempts in flight at once, over all endpoints" },
    { .sect = SK_DAEMON, .name = "webhook_poll", .type = KT_DURATION,
      .off = C_(webhook_poll_us, uint64_t), .def = "1s", .min = 10 * MS, .max = HOUR, .reload = true,
      .doc = "how often the webhook outbox is checked for rows queued by others or redelivered" },
    { .sect = SK_DAEMON, .name = "job_timeout", .type = KT_DURATION,
      .off = C_(job_timeout_us, uint64_t), .def = "10m", .min = 0, .max = DAY, .reload = true,
      .doc = "a detector job running longer counts as a wedged worker and stops the "
             "systemd watchdog pings; 0 = never" },
    { .sect = SK_DAEMON, .name = "status_interval", .type = KT_DURATION,
      .off = C_(status_interval_us, uint64_t), .def = "10s", .min = 100 * MS, .max = HOUR,
      .reload = true,
      .doc = "how often the one-line status shown by systemctl status is refreshed" },

    /* [listen] */
    { .sect = SK_LISTEN, .name = "ingest", .type = KT_LIST, .off = C_(ingest, char **),
      .count_off = C_(n_ingest, size_t), .def = "tcp://127.0.0.1:7070", .min = 1, .max = 16,
      .check = check_listen,
      .doc = "record listeners, comma separated: tcp://HOST:PORT ([v6] allowed) or unix:/path" },
    { .sect = SK_LISTEN, .name = "http", .type = KT_LIST, .off = C_(http, char **),
      .count_off = C_(n_http, size_t), .def = "tcp://127.0.0.1:7071", .min = 0, .max = 16,
      .check = check_listen,
      .doc = "HTTP side port (metrics, health, query API, POST ingest); empty = disabled" },
    { .sect = SK_LISTEN, .name = "token", .type = KT_STRING, .off = C_(token, char *),
      .def = "", .min = 0, .max = 256, .check = check_token, .reload = true, .secret = true,
      .doc = "shared secret clients must present; empty = no authentication" },
    { .sect = SK_LISTEN, .name = "max_line", .type = KT_SIZE, .off = C_(max_line, unsigned),
      .def = "1M", .min = KIB, .max = 64 * MIB, .reload = true,
      .doc = "largest NDJSON line accepted from a client, on a socket or in an HTTP body" },
    { .sect = SK_LISTEN, .name = "max_frame", .type = KT_SIZE, .off = C_(max_frame, unsigned),
      .def = "4M", .min = KIB, .max = 64 * MIB, .reload = true,
      .doc = "largest binary frame, header included; larger ones are refused and skipped" },
    { .sect = SK_LISTEN, .name = "max_body", .type = KT_SIZE, .off = C_(max_body, unsigned),
      .def = "16M", .min = KIB, .max = GIB, .reload = true,
      .doc = "largest HTTP request body (POST /v1/ingest, /v1/labels); larger get 413" },
    { .sect = SK_LISTEN, .name = "max_connections", .type = KT_UINT,
      .off = C_(max_connections, unsigned), .def = "1024", .min = 1, .max = 1000000, .reload = true,
      .doc = "client connections held at once; more are refused" },
    { .sect = SK_LISTEN, .name = "idle_timeout", .type = KT_DURATION,
      .off = C_(idle_timeout_us, uint64_t), .def = "5m", .min = SEC, .max = DAY, .reload = true,
      .doc = "a client connection silent for this long is closed" },
    { .sect = SK_LISTEN, .name = "handshake_timeout", .type = KT_DURATION,
      .off = C_(handshake_timeout_us, uint64_t), .def = "10s", .min = 100 * MS, .max = HOUR,
      .reload = true,
      .doc = "a new connection must send its first line, or binary HELLO, within this" },
    { .sect = SK_LISTEN, .name = "frame_timeout", .type = KT_DURATION,
      .off = C_(frame_timeout_us, uint64_t), .def = "60s", .min = 100 * MS, .max = HOUR,
      .reload = true,
      .doc = "a line or frame must arrive whole within this of its first byte (slowloris)" },
    { .sect = SK_LISTEN, .name = "http_timeout", .type = KT_DURATION,
      .off = C_(http_timeout_us, uint64_t), .def = "30s", .min = SEC, .max = HOUR,
      .reload = true,
      .doc = "an HTTP request must arrive, and its answer leave, within this" },
    { .sect = SK_LISTEN, .name = "metrics_max_slices", .type = KT_UINT,
      .off = C_(metrics_max_slices, unsigned), .def = "100", .min = 0, .max = 1000000,
      .reload = true,
      .doc = "per model, slices given their own series on /metrics; the rest are counted" },

    /* [store] */
    { .sect = SK_STORE, .name = "dsn", .type = KT_STRING, .off = C_(dsn, char *),
      .def = NULL, .min = 1, .max = 4096, .secret = true,
      .doc = "libpq connection string; a service= name keeps passwords out of this file" },
    { .sect = SK_STORE, .name = "persist_reference", .type = KT_ENUM,
      .off = C_(persist_reference, unsigned), .def = "raw", .names = persist_modes, .reload = true,
      .doc = "how reference samples are saved for restarts" },
    { .sect = SK_STORE, .name = "query_timeout", .type = KT_DURATION,
      .off = C_(query_timeout_us, uint64_t), .def = "30s", .min = 100 * MS, .max = HOUR,
      .reload = true,
      .doc = "a database query running longer is cancelled and retried" },
    { .sect = SK_STORE, .name = "max_pending", .type = KT_UINT, .off = C_(max_pending, unsigned),
      .def = "10000", .min = 1, .max = 10000000,
      .doc = "closed windows queued in memory for the database; beyond it they go to the journal" },
    { .sect = SK_STORE, .name = "journal_max", .type = KT_SIZE, .off = C_(journal_max, unsigned),
      .def = "256M", .min = MIB, .max = 2 * GIB,
      .doc = "spill journal in state_dir for results while the database is away; when full, "
             "new windows are refused" },
    { .sect = SK_STORE, .name = "persist_projection_dim", .type = KT_UINT,
      .off = C_(persist_projection_dim, unsigned), .def = "64", .min = 2, .max = 4096, .reload = true,
      .doc = "dimensions of the seeded random projection saved by persist_reference = projected" },
    { .sect = SK_STORE, .name = "read_timeout", .type = KT_DURATION,
      .off = C_(read_timeout_us, uint64_t), .def = "5s", .min = 100 * MS, .max = 10 * MINUTE,
      .doc = "a JSON API query not answered within this time fails with 503" },
    { .sect = SK_STORE, .name = "read_max_rows", .type = KT_UINT, .off = C_(read_max_rows, unsigned),
      .def = "10000", .min = 1, .max = 1000000,
      .doc = "rows one JSON API query returns at most; larger limits are lowered to it" },

    /* [model.NAME] */
    { .sect = SK_MODEL, .name = "dim", .type = KT_UINT, .off = M_(dim, unsigned),
      .def = NULL, .min = 1, .max = 65536, .reload = true,
      .doc = "embedding dimension; records with another length are rejected" },
    { .sect = SK_MODEL, .name = "slice_by", .type = KT_LIST, .off = M_(slice_by, char **),
      .count_off = M_(n_slice_by, size_t), .def = "", .min = 0, .max = 8, .check = check_name,
      .reload = true,
      .doc = "label keys that define a slice, comma separated; empty = whole model only" },
    { .sect = SK_MODEL, .name = "reference.size", .type = KT_UINT,
      .off = M_(reference_size, unsigned), .def = NULL, .min = 2, .max = 10000000,
      .reload = true,
      .doc = "records in the reference sample of each slice" },
    { .sect = SK_MODEL, .name = "storage", .type = KT_ENUM, .off = M_(storage, unsigned),
      .def = "float32", .names = storages, .reload = true,
      .doc = "how reference and window samples are kept: float16 halves their memory" },
    { .sect = SK_MODEL, .name = "window.size", .type = KT_UINT, .off = M_(window_size, unsigned),
      .def = "0", .min = 0, .max = 10000000, .reload = true,
      .doc = "records that close a window; 0 = close by window.interval only" },
    { .sect = SK_MODEL, .name = "window.interval", .type = KT_DURATION,
      .off = M_(window_interval_us, uint64_t), .def = "0", .min = 0, .max = 30 * DAY,
      .reload = true,
      .doc = "time that closes a window; 0 = close by window.size only" },
    { .sect = SK_MODEL, .name = "window.min_size", .type = KT_UINT,
      .off = M_(window_min_size, unsigned), .def = "20", .min = 2, .max = 10000000,
      .reload = true,
      .doc = "a window closing with fewer records is recorded as insufficient_data, not tested" },
    { .sect = SK_MODEL, .name = "reference.min_size", .type = KT_UINT,
      .off = M_(reference_min_size, unsigned), .def = "20", .min = 2, .max = 10000000,
      .reload = true,
      .doc = "a slice whose own reference is smaller is tested against the whole-model one" },
    { .sect = SK_MODEL, .name = "slice.idle_timeout", .type = KT_DURATION,
      .off = M_(slice_idle_us, uint64_t), .def = "24h", .min = 0, .max = 365 * DAY,
      .reload = true,
      .doc = "a slice without records this long is dropped with its reference; 0 = never" },
    { .sect = SK_MODEL, .name = "detectors", .type = KT_FLAGS, .off = M_(detectors, unsigned),
      .def = NULL, .min = 1, .names = detector_names, .reload = true,
      .doc = "tests run on each closed window, comma separated" },
    { .sect = SK_MODEL, .name = "mmd.permutations", .type = KT_UINT,
      .off = M_(mmd_permutations, unsigned), .def = "500", .min = 0, .max = 100000,
      .reload = true,
      .doc = "permutations for the MMD p-value; 0 = statistic only" },
    { .sect = SK_MODEL, .name = "mmd.bandwidth_points", .type = KT_UINT,
      .off = M_(mmd_bandwidth_points, unsigned), .def = "1000", .min = 2, .max = 100000,
      .reload = true,
      .doc = "reference points sampled for the median-distance kernel bandwidth" },
    { .sect = SK_MODEL, .name = "centroid.threshold", .type = KT_DOUBLE,
      .off = M_(centroid_threshold, double), .def = "0.1", .dmin = 0, .dmax = 2,
      .dmin_open = true, .reload = true,
      .doc = "cosine distance between window and reference means flagged as drift" },
    { .sect = SK_MODEL, .name = "energy.permutations", .type = KT_UINT,
      .off = M_(energy_permutations, unsigned), .def = "500", .min = 0, .max = 100000,
      .reload = true,
      .doc = "permutations for the energy-distance p-value; 0 = statistic only" },
    { .sect = SK_MODEL, .name = "classifier.permutations", .type = KT_UINT,
      .off = M_(classifier_permutations, unsigned), .def = "1000", .min = 0,
      .max = 100000, .reload = true,
      .doc = "relabellings of the held-out points for the classifier's AUC p-value" },
    { .sect = SK_MODEL, .name = "classifier.holdout", .type = KT_DOUBLE,
      .off = M_(classifier_holdout, double), .def = "0.5", .dmin = 0, .dmax = 1,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "share of reference and window held out to measure the classifier's AUC" },
    { .sect = SK_MODEL, .name = "classifier.l2", .type = KT_DOUBLE,
      .off = M_(classifier_l2, double), .def = "1", .dmin = 0, .dmax = HUGE_VAL,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "L2 penalty of the logistic regression on standardised coordinates" },
    { .sect = SK_MODEL, .name = "classifier.max_iter", .type = KT_UINT,
      .off = M_(classifier_max_iter, unsigned), .def = "100", .min = 1, .max = 10000,
      .reload = true,
      .doc = "L-BFGS iterations when training the classifier" },
    { .sect = SK_MODEL, .name = "health.collapse_drop", .type = KT_DOUBLE,
      .off = M_(health_collapse_drop, double), .def = "0.25", .dmin = 0, .dmax = 1,
      .dmin_open = true, .reload = true,
      .doc = "relative drop of the effective rank flagged as collapse" },
    { .sect = SK_MODEL, .name = "health.uniformity_rise", .type = KT_DOUBLE,
      .off = M_(health_uniformity_rise, double), .def = "0.5", .dmin = 0, .dmax = 4,
      .dmin_open = true, .reload = true,
      .doc = "rise of the uniformity loss (vectors bunching together) flagged" },
    { .sect = SK_MODEL, .name = "health.norm_change", .type = KT_DOUBLE,
      .off = M_(health_norm_change, double), .def = "0.25", .dmin = 0, .dmax = HUGE_VAL,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "relative change of the mean embedding norm flagged" },
    { .sect = SK_MODEL, .name = "health.duplicate_rise", .type = KT_DOUBLE,
      .off = M_(health_duplicate_rise, double), .def = "0.05", .dmin = 0, .dmax = 1,
      .dmin_open = true, .reload = true,
      .doc = "rise of the share of near-duplicate vectors flagged" },
    { .sect = SK_MODEL, .name = "health.duplicate_cosine", .type = KT_DOUBLE,
      .off = M_(health_duplicate_cosine, double), .def = "0.99", .dmin = 0, .dmax = 1,
      .dmin_open = true, .reload = true,
      .doc = "cosine similarity at which two vectors count as near-duplicates" },
    { .sect = SK_MODEL, .name = "scores.psi_threshold", .type = KT_DOUBLE,
      .off = M_(scores_psi_threshold, double), .def = "0.2", .dmin = 0, .dmax = HUGE_VAL,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "population stability index of the scores flagged as drift" },
    { .sect = SK_MODEL, .name = "scores.js_threshold", .type = KT_DOUBLE,
      .off = M_(scores_js_threshold, double), .def = "0.1", .dmin = 0, .dmax = 1,
      .dmin_open = true, .reload = true,
      .doc = "Jensen-Shannon distance of the scores flagged as drift" },
    { .sect = SK_MODEL, .name = "projection.dim", .type = KT_UINT,
      .off = M_(projection_dim, unsigned), .def = "0", .min = 0, .max = 65536,
      .reload = true,
      .doc = "random projection to this many dimensions before mmd, energy and "
             "classifier; 0 = off" },
    { .sect = SK_MODEL, .name = "detectors.max_memory", .type = KT_SIZE,
      .off = M_(detector_memory, unsigned), .def = "2G", .min = MIB, .max = 3 * GIB,
      .reload = true,
      .doc = "working memory one detector may use on a window; a larger need skips it" },
    { .sect = SK_MODEL, .name = "alpha", .type = KT_DOUBLE, .off = M_(alpha, double),
      .def = "0.01", .dmin = 0, .dmax = 1, .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "significance level after correction" },
    { .sect = SK_MODEL, .name = "correction", .type = KT_ENUM, .off = M_(correction, unsigned),
      .def = "bh", .names = corrections, .reload = true,
      .doc = "multiple-testing correction across slices and dimensions" },
    { .sect = SK_MODEL, .name = "effect_floor", .type = KT_DOUBLE, .off = M_(effect_floor, double),
      .def = "0", .dmin = 0, .dmax = HUGE_VAL, .dmax_open = true, .reload = true,
      .doc = "smallest effect size called drift even when p < alpha (every test)" },
    { .sect = SK_MODEL, .name = "effect_floor.by_test", .type = KT_LIST,
      .off = M_(effect_floor_by_test, char **), .count_off = M_(n_effect_floor_by_test, size_t),
      .def = "", .min = 0, .max = 16, .check = check_floor, .reload = true,
      .doc = "per-test floors overriding effect_floor, as test:number (mmd:0.002, centroid:0.05)" },
    { .sect = SK_MODEL, .name = "alarm.k", .type = KT_UINT, .off = M_(alarm_k, unsigned),
      .def = "1", .min = 1, .max = 64, .reload = true,
      .doc = "a slice alarms when alarm.k of its last alarm.m windows drifted" },
    { .sect = SK_MODEL, .name = "alarm.m", .type = KT_UINT, .off = M_(alarm_m, unsigned),
      .def = "1", .min = 1, .max = 64, .reload = true,
      .doc = "windows remembered per slice for the alarm.k rule" },
    { .sect = SK_MODEL, .name = "scores.width", .type = KT_UINT,
      .off = M_(scores_width, unsigned), .def = "0", .min = 0, .max = 4096, .reload = true,
      .doc = "scores per record: 0 = none (scores ignored), 1 = binary P(y=1), K = K classes" },
    { .sect = SK_MODEL, .name = "labels.ttl", .type = KT_DURATION,
      .off = M_(labels_ttl_us, uint64_t), .def = "1h", .min = SEC, .max = 30 * DAY,
      .reload = true,
      .doc = "a scored record with an id waits this long for a label sent later" },
    { .sect = SK_MODEL, .name = "labels.max_pending", .type = KT_UINT,
      .off = M_(labels_max_pending, unsigned), .def = "100000", .min = 0, .max = 10000000,
      .reload = true,
      .doc = "scored records waiting for their label; the oldest give way; 0 = inline labels only" },
    { .sect = SK_MODEL, .name = "calibration.min_labels", .type = KT_UINT,
      .off = M_(calibration_min_labels, unsigned), .def = "30", .min = 1, .max = 10000000,
      .reload = true,
      .doc = "labeled records a window (or reference) needs for calibration numbers" },
    { .sect = SK_MODEL, .name = "calibration.ece_margin", .type = KT_DOUBLE,
      .off = M_(calibration_ece_margin, double), .def = "0.05", .dmin = 0, .dmax = 1,
      .reload = true,
      .doc = "ECE this much above the reference's raises calibration.degraded" },
    { .sect = SK_MODEL, .name = "calibration.brier_margin", .type = KT_DOUBLE,
      .off = M_(calibration_brier_margin, double), .def = "0.05", .dmin = 0, .dmax = 2,
      .reload = true,
      .doc = "Brier score this much above the reference's raises calibration.degraded" },
    { .sect = SK_MODEL, .name = "max_slices", .type = KT_UINT, .off = M_(max_slices, unsigned),
      .def = "1000", .min = 1, .max = 1000000, .reload = true,
      .doc = "distinct slices tracked, * included; records of further slices are refused" },
    { .sect = SK_MODEL, .name = "max_queued_windows", .type = KT_UINT,
      .off = M_(max_queued_windows, unsigned), .def = "16", .min = 1, .max = 100000,
      .reload = true,
      .doc = "closed windows waiting for or in the detectors; at this, ingest slows down" },
    { .sect = SK_MODEL, .name = "seed", .type = KT_U64, .off = M_(seed, uint64_t),
      .def = "1", .min = 0, .max = UINT64_MAX, .reload = true,
      .doc = "seed for permutations and subsampling, recorded with each result" },
    { .sect = SK_MODEL, .name = "on_drift", .type = KT_STRING, .off = M_(on_drift, char *),
      .def = "", .min = 0, .max = CONF_NAME_MAX, .check = check_name, .reload = true,
      .doc = "webhook section called when the model drifts; empty = none" },
    { .sect = SK_MODEL, .name = "stream.detectors", .type = KT_FLAGS,
      .off = M_(stream_detectors, unsigned), .def = "", .min = 0, .names = stream_detector_names,
      .reload = true,
      .doc = "streaming detectors on per-record signals, alarms between windows; empty = off" },
    { .sect = SK_MODEL, .name = "stream.signals", .type = KT_FLAGS,
      .off = M_(stream_signals, unsigned), .def = "score, error", .min = 1, .names = signal_names,
      .reload = true,
      .doc = "per-record signals the streaming detectors watch (error: once the label is known)" },
    { .sect = SK_MODEL, .name = "stream.ph.delta", .type = KT_DOUBLE,
      .off = M_(stream_ph_delta, double), .def = "0.025", .dmin = 0, .dmax = HUGE_VAL,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "Page-Hinkley: change of the signal's mean tolerated without an alarm" },
    { .sect = SK_MODEL, .name = "stream.ph.threshold", .type = KT_DOUBLE,
      .off = M_(stream_ph_threshold, double), .def = "50", .dmin = 0, .dmax = HUGE_VAL,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "Page-Hinkley: cumulative deviation (lambda) that raises an alarm" },
    { .sect = SK_MODEL, .name = "stream.ph.min_samples", .type = KT_UINT,
      .off = M_(stream_ph_min_samples, unsigned), .def = "30", .min = 1, .max = 100000000,
      .reload = true,
      .doc = "Page-Hinkley: values after a (re)start before an alarm can be raised" },
    { .sect = SK_MODEL, .name = "stream.ph.forget", .type = KT_DOUBLE,
      .off = M_(stream_ph_forget, double), .def = "1", .dmin = 0, .dmax = 1,
      .dmin_open = true, .reload = true,
      .doc = "Page-Hinkley: fading factor of old deviations; 1 = the classic test" },
    { .sect = SK_MODEL, .name = "stream.ph.direction", .type = KT_ENUM,
      .off = M_(stream_ph_direction, unsigned), .def = "both", .names = directions,
      .reload = true,
      .doc = "Page-Hinkley: changes of the mean reported" },
    { .sect = SK_MODEL, .name = "stream.adwin.delta", .type = KT_DOUBLE,
      .off = M_(stream_adwin_delta, double), .def = "0.002", .dmin = 0, .dmax = 1,
      .dmin_open = true, .dmax_open = true, .reload = true,
      .doc = "ADWIN: confidence of a cut; smaller = fewer false alarms, slower detection" },
    { .sect = SK_MODEL, .name = "stream.adwin.clock", .type = KT_UINT,
      .off = M_(stream_adwin_clock, unsigned), .def = "32", .min = 1, .max = 1000000,
      .reload = true,
      .doc = "ADWIN: values between two checks for a cut" },
    { .sect = SK_MODEL, .name = "stream.adwin.max_buckets", .type = KT_UINT,
      .off = M_(stream_adwin_max_buckets, unsigned), .def = "5", .min = 2, .max = 16,
      .reload = true,
      .doc = "ADWIN: buckets kept per size; more = finer cut points, more work" },
    { .sect = SK_MODEL, .name = "stream.adwin.min_window", .type = KT_UINT,
      .off = M_(stream_adwin_min_window, unsigned), .def = "5", .min = 1, .max = 1000000,
      .reload = true,
      .doc = "ADWIN: values each side of a cut holds at least" },
    { .sect = SK_MODEL, .name = "stream.alarm_interval", .type = KT_DURATION,
      .off = M_(stream_alarm_interval_us, uint64_t), .def = "1m", .min = 0, .max = 30 * DAY,
      .reload = true,
      .doc = "shortest time between two alarms recorded for one detector, signal and slice; "
             "sooner ones are only counted" },

    /* [webhook.NAME] */
    { .sect = SK_WEBHOOK, .name = "url", .type = KT_STRING, .off = W_(url, char *),
      .def = NULL, .min = 1, .max = 2048, .check = check_url, .reload = true,
      .doc = "endpoint, http:// or https://" },
    { .sect = SK_WEBHOOK, .name = "secret", .type = KT_LIST, .off = W_(secrets, char **),
      .count_off = W_(n_secrets, size_t), .def = NULL, .min = 1, .max = 8,
      .check = check_whsec, .reload = true, .secret = true,
      .doc = "whsec_<base64> signing secrets, comma separated; several while rotating" },
    { .sect = SK_WEBHOOK, .name = "cooldown", .type = KT_DURATION, .off = W_(cooldown_us, uint64_t),
      .def = "1h", .min = 0, .max = 30 * DAY, .reload = true,
      .doc = "after a call for a model, further events for it wait this long" },
    { .sect = SK_WEBHOOK, .name = "timeout", .type = KT_DURATION, .off = W_(timeout_us, uint64_t),
      .def = "10s", .min = 100 * MS, .max = 5 * MINUTE, .reload = true,
      .doc = "one delivery attempt fails after this long" },
    { .sect = SK_WEBHOOK, .name = "retry.horizon", .type = KT_DURATION,
      .off = W_(retry_horizon_us, uint64_t), .def = "24h", .min = SEC, .max = 30 * DAY,
      .reload = true,
      .doc = "retries stop and the delivery is dead this long after the first attempt" },
    { .sect = SK_WEBHOOK, .name = "max_attempts", .type = KT_UINT,
      .off = W_(max_attempts, unsigned), .def = "20", .min = 1, .max = 1000, .reload = true,
      .doc = "attempts before the delivery is dead, whichever comes first with the horizon" },
    { .sect = SK_WEBHOOK, .name = "retry.initial", .type = KT_DURATION,
      .off = W_(retry_initial_us, uint64_t), .def = "5s", .min = 10 * MS, .max = DAY,
      .reload = true,
      .doc = "delay before the first retry; each further retry doubles it, with jitter" },
    { .sect = SK_WEBHOOK, .name = "retry.max_delay", .type = KT_DURATION,
      .off = W_(retry_max_delay_us, uint64_t), .def = "1h", .min = 10 * MS, .max = 30 * DAY,
      .reload = true,
      .doc = "longest delay between two attempts (a Retry-After header may ask for more)" },
    { .sect = SK_WEBHOOK, .name = "events", .type = KT_FLAGS, .off = W_(events, unsigned),
      .def = "drift.detected, calibration.degraded, embedding.collapse, stream.alarm", .min = 1,
      .names = event_names, .reload = true,
      .doc = "event types sent to this endpoint, comma separated" },
    { .sect = SK_WEBHOOK, .name = "allow_addresses", .type = KT_FLAGS,
      .off = W_(allow_addresses, unsigned), .def = "", .min = 0, .names = address_ranges,
      .reload = true,
      .doc = "address ranges the url may resolve to besides public ones; empty = public only" },
    { .sect = SK_WEBHOOK, .name = "ca_file", .type = KT_STRING, .off = W_(ca_file, char *),
      .def = "", .min = 0, .max = PATH_MAX - 1, .check = check_path, .reload = true,
      .doc = "PEM file of CA certificates trusted for https; empty = the system store" },
    { .sect = SK_WEBHOOK, .name = "payload.max_slices", .type = KT_UINT,
      .off = W_(payload_max_slices, unsigned), .def = "1000", .min = 1, .max = 100000,
      .reload = true,
      .doc = "slices listed in one event body; further ones are only counted (slices_total)" },
};

#define N_KEYS ARRAY_SIZE(keys)

/* --- value checks ------------------------------------------------------ */

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]))
            return false;
    return true;
}

static bool check_name(const char *s, char *why, size_t whylen)
{
    if (valid_name(s, strlen(s)))
        return true;
    snprintf(why, whylen, "'%s' is not a name (1..%d of A-Z a-z 0-9 _ . -)", s, CONF_NAME_MAX);
    return false;
}

/* "test:number" with a name and a finite number >= 0. */
static bool check_floor(const char *s, char *why, size_t whylen)
{
    const char *colon = strchr(s, ':');
    char *end;
    double v;

    if (!colon || !valid_name(s, (size_t)(colon - s))) {
        snprintf(why, whylen, "'%s' is not test:number", s);
        return false;
    }
    v = strtod(colon + 1, &end);
    if (end == colon + 1 || *end || !isfinite(v) || v < 0) {
        snprintf(why, whylen, "'%s': the floor is not a number >= 0", s);
        return false;
    }
    return true;
}

static bool check_path(const char *s, char *why, size_t whylen)
{
    if (s[0] == '/')
        return true;
    snprintf(why, whylen, "'%s' is not an absolute path", s);
    return false;
}

static bool check_token(const char *s, char *why, size_t whylen)
{
    for (const char *q = s; *q; q++) {
        if (*q <= ' ' || *q > '~') {
            snprintf(why, whylen, "must be printable ASCII without spaces");
            return false;
        }
    }
    return true;
}

/* 1..65535 in decimal, nothing else. */
static bool valid_port(const char *s)
{
    unsigned long v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return false;
    }
    return v > 0;
}

static bool valid_tcp(const char *hostport)
{
    const char *port;
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        char v6[INET6_ADDRSTRLEN];
        struct in6_addr addr;
        size_t n = close ? (size_t)(close - hostport - 1) : 0;
        if (n == 0 || n >= sizeof v6 || close[1] != ':')
            return false;
        memcpy(v6, hostport + 1, n);
        v6[n] = '\0';
        if (inet_pton(AF_INET6, v6, &addr) != 1)
            return false;
        port = close + 2;
    } else {
        const char *colon = strchr(hostport, ':');
        if (!colon || colon == hostport)
            return false;
        for (const char *q = hostport; q < colon; q++)
            if (!is_name_char(*q) || *q == '_')
                return false;
        port = colon + 1;
    }
    return valid_port(port);
}

static bool check_listen(const char *s, char *why, size_t whylen)
{
    if (strncmp(s, "unix:", 5) == 0) {
        const char *path = s + 5;
        if (path[0] == '/' && strlen(path) < sizeof(((struct sockaddr_un *)0)->sun_path))
            return true;
        snprintf(why, whylen, "'%s': a unix socket needs an absolute path under %zu bytes", s,
                 sizeof(((struct sockaddr_un *)0)->sun_path));
        return false;
    }
    if (strncmp(s, "tcp://", 6) == 0 && valid_tcp(s + 6))
        return true;
    snprintf(why, whylen, "'%s' is not tcp://HOST:PORT or unix:/path", s);
    return false;
}

static bool check_url(const char *s, char *why, size_t whylen)
{
    const char *host = strstr(s, "://");
    size_t scheme_len = host ? (size_t)(host - s) : 0;
    if (!((scheme_len == 4 && strncasecmp(s, "http", 4) == 0) ||
          (scheme_len == 5 && strncasecmp(s, "https", 5) == 0))) {
        snprintf(why, whylen, "'%s' is not an http:// or https:// URL", s);
        return false;
    }
    host += 3;
    if (!*host || strchr("/?#", *host)) {
        snprintf(why, whylen, "'%s' has no host", s);
        return false;
    }
    if (strpbrk(s, " \t")) {
        snprintf(why, whylen, "'%s' contains a space", s);
        return false;
    }
    return true;
}

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Standard Webhooks: "whsec_" + standard padded base64 of 24..64 random
 * bytes. The value itself stays out of the message: it is a secret. */
static bool check_whsec(const char *s, char *why, size_t whylen)
{
    if (strncmp(s, "whsec_", 6) != 0) {
        snprintf(why, whylen, "a secret does not start with whsec_");
        return false;
    }
    const char *b = s + 6;
    size_t n = strlen(b), pad = 0;
    while (pad < 2 && pad < n && b[n - 1 - pad] == '=')
        pad++;
    bool ok = n > 0 && n % 4 == 0;
    for (size_t i = 0; ok && i < n - pad; i++)
        ok = b64_value(b[i]) >= 0;
    if (!ok) {
        snprintf(why, whylen, "a secret is not valid base64 after whsec_");
        return false;
    }
    size_t bytes = n / 4 * 3 - pad;
    if (bytes < 24 || bytes > 64) {
        snprintf(why, whylen, "a secret decodes to %zu bytes, not 24..64", bytes);
        return false;
    }
    return true;
}

/* --- scalar parsers ---------------------------------------------------- */

/* One or more decimal digits at *s, advancing *s past them. */
static int parse_digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

static int parse_with_unit(const char *s, const struct unit *units, size_t n, bool fold_case,
                           uint64_t *out)
{
    uint64_t v;
    int rc = parse_digits(&s, &v);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((fold_case ? strcasecmp(s, units[i].suffix) : strcmp(s, units[i].suffix)) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mult)
            return -ERANGE;
        *out = v * units[i].mult;
        return 0;
    }
    return -EINVAL;
}

int conf_parse_duration(const char *s, uint64_t *us)
{
    /* Case-sensitive, so "5M" (months? megabytes?) is an error, not 5 minutes. */
    static const struct unit units[] = {
        { "", SEC }, { "us", 1 }, { "ms", MS }, { "s", SEC },
        { "m", MINUTE }, { "h", HOUR }, { "d", DAY },
    };
    return parse_with_unit(s, units, ARRAY_SIZE(units), false, us);
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = { { "", 1 }, { "k", KIB }, { "m", MIB }, { "g", GIB } };
    return parse_with_unit(s, units, ARRAY_SIZE(units), true, bytes);
}

/* Largest unit that divides v exactly, so limits print as people write them. */
static void fmt_scaled(char *buf, size_t len, uint64_t v, const struct unit *units, size_t n)
{
    if (v == 0) {
        snprintf(buf, len, "0");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (v % units[i].mult == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", v / units[i].mult, units[i].suffix);
            return;
        }
    }
}

static void fmt_duration(char *buf, size_t len, uint64_t us)
{
    static const struct unit units[] = {
        { "d", DAY }, { "h", HOUR }, { "m", MINUTE }, { "s", SEC }, { "ms", MS }, { "us", 1 },
    };
    fmt_scaled(buf, len, us, units, ARRAY_SIZE(units));
}

static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
    static const struct unit units[] = { { "G", GIB }, { "M", MIB }, { "k", KIB }, { "", 1 } };
    fmt_scaled(buf, len, bytes, units, ARRAY_SIZE(units));
}

/* The allowed range of a numeric key, e.g. "1..65536", "1k..64M", "(0, 1)". */
static void fmt_range(char *buf, size_t len, const struct key_def *k)
{
    char lo[32], hi[32];
    switch (k->type) {
    case KT_DOUBLE:
        if (isinf(k->dmax))
            snprintf(buf, len, "%s %g", k->dmin_open ? ">" : ">=", k->dmin);
        else
            snprintf(buf, len, "%c%g, %g%c", k->dmin_open ? '(' : '[', k->dmin, k->dmax,
                     k->dmax_open ? ')' : ']');
        return;
    case KT_DURATION:
        fmt_duration(lo, sizeof lo, k->min);
        fmt_duration(hi, sizeof hi, k->max);
        break;
    case KT_SIZE:
        fmt_size(lo, sizeof lo, k->min);
        fmt_size(hi, sizeof hi, k->max);
        break;
    default:
        snprintf(lo, sizeof lo, "%" PRIu64, k->min);
        snprintf(hi, sizeof hi, "%" PRIu64, k->max);
        break;
    }
    snprintf(buf, len, "%s..%s", lo, hi);
}

static void fmt_names(char *buf, size_t len, const struct name_val *names)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const struct name_val *nv = names; nv->name && used < len; nv++) {
        int w = snprintf(buf + used, len - used, "%s%s", nv == names ? "" : ", ", nv->name);
        used += w > 0 ? (size_t)w : 0;
    }
}

static const struct name_val *find_name(const struct name_val *names, const char *s, size_t n)
{
    for (const struct name_val *nv = names; nv->name; nv++)
        if (strlen(nv->name) == n && strncasecmp(nv->name, s, n) == 0)
            return nv;
    return NULL;
}

/* --- list values ------------------------------------------------------- */

struct item {
    const char *s;
    size_t n;
};

/* Splits a comma list into trimmed items. Empty text is an empty list; an
 * empty item ("a,,b", "a,") is an error. Returns the item count, or -1. */
static long split_list(const char *text, struct item *items, size_t max, char *why, size_t whylen)
{
    size_t n = 0;
    if (!*text)
        return 0;
    for (const char *p = text;; p++) {
        const char *end = p + strcspn(p, ",");
        const char *b = p, *e = end;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b == e) {
            snprintf(why, whylen, "empty item in the list");
            return -1;
        }
        if (n == max) {
            snprintf(why, whylen, "more than %zu items", max);
            return -1;
        }
        items[n].s = b;
        items[n++].n = (size_t)(e - b);
        if (!*end)
            return (long)n;
        p = end;
    }
}

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

static int parse_list(const struct key_def *k, const char *text, char ***out, size_t *out_n,
                      char *why, size_t whylen)
{
    struct item items[LIST_MAX];
    long n = split_list(text, items, k->max < LIST_MAX ? (size_t)k->max : LIST_MAX, why, whylen);
    if (n < 0)
        return -EINVAL;
    if ((uint64_t)n < k->min) {
        snprintf(why, whylen, "needs at least %" PRIu64 " item%s", k->min, k->min == 1 ? "" : "s");
        return -EINVAL;
    }
    char **list = n ? calloc((size_t)n, sizeof *list) : NULL;
    if (n && !list)
        return -ENOMEM;
    for (long i = 0; i < n; i++) {
        list[i] = strndup(items[i].s, items[i].n);
        if (!list[i]) {
            free_list(list, (size_t)i);
            return -ENOMEM;
        }
        bool ok = !k->check || k->check(list[i], why, whylen);
        for (long j = 0; ok && j < i; j++) {
            if (strcmp(list[i], list[j]) == 0) {
                if (k->secret)
                    snprintf(why, whylen, "a secret is listed twice");
                else
                    snprintf(why, whylen, "'%s' is listed twice", list[i]);
                ok = false;
            }
        }
        if (!ok) {
            free_list(list, (size_t)i + 1);
            return -EINVAL;
        }
    }
    free_list(*out, *out_n);
    *out = list;
    *out_n = (size_t)n;
    return 0;
}

static int parse_flags(const struct key_def *k, const char *text, unsigned *out, char *why,
                       size_t whylen)
{
    struct item items[32];
    long n = split_list(text, items, ARRAY_SIZE(items), why, whylen);
    unsigned mask = 0;
    if (n < 0)
        return -EINVAL;
    for (long i = 0; i < n; i++) {
        const struct name_val *nv = find_name(k->names, items[i].s, items[i].n);
        char known[160];
        if (!nv) {
            fmt_names(known, sizeof known, k->names);
            snprintf(why, whylen, "unknown name '%.*s' (known: %s)", (int)items[i].n, items[i].s,
                     known);
            return -EINVAL;
        }
        if (mask & nv->val) {
            snprintf(why, whylen, "'%s' is listed twice", nv->name);
            return -EINVAL;
        }
        mask |= nv->val;
    }
    if ((uint64_t)n < k->min) {
        snprintf(why, whylen, "needs at least %" PRIu64 " name%s", k->min, k->min == 1 ? "" : "s");
        return -EINVAL;
    }
    *out = mask;
    return 0;
}

/* --- one value --------------------------------------------------------- */

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

static const void *cfield(const void *base, size_t off)
{
    return (const char *)base + off;
}

/* Parses text for key k and stores it into the section struct at base.
 * Returns 0, -EINVAL with a reason in why, or -ENOMEM. The field keeps its
 * previous value on error. */
static int parse_value(const struct key_def *k, void *base, const char *text, locale_t num,
                       char *why, size_t whylen)
{
    void *dst = field(base, k->off);
    char range[64];
    uint64_t v = 0;
    int rc = 0;

    switch (k->type) {
    case KT_STRING: {
        size_t n = strlen(text);
        char *copy;
        if (n < k->min) {
            snprintf(why, whylen, "must not be empty");
            return -EINVAL;
        }
        if (n > k->max) {
            snprintf(why, whylen, "longer than %" PRIu64 " bytes", k->max);
            return -EINVAL;
        }
        if (n && k->check && !k->check(text, why, whylen))
            return -EINVAL;
        copy = n ? strdup(text) : NULL;
        if (n && !copy)
            return -ENOMEM;
        free(*(char **)dst);
        *(char **)dst = copy;
        return 0;
    }
    case KT_LIST:
        return parse_list(k, text, dst, field(base, k->count_off), why, whylen);
    case KT_FLAGS:
        return parse_flags(k, text, dst, why, whylen);
    case KT_ENUM: {
        const struct name_val *nv = find_name(k->names, text, strlen(text));
        char known[160];
        if (!nv) {
            fmt_names(known, sizeof known, k->names);
            snprintf(why, whylen, "'%s' is not one of: %s", text, known);
            return -EINVAL;
        }
        *(unsigned *)dst = nv->val;
        return 0;
    }
    case KT_DOUBLE: {
        char *end;
        double d = strtod_l(text, &end, num);
        bool lo_ok, hi_ok;
        if (end == text || *end || !isfinite(d)) {
            snprintf(why, whylen, "'%s' is not a number", text);
            return -EINVAL;
        }
        lo_ok = k->dmin_open ? d > k->dmin : d >= k->dmin;
        hi_ok = k->dmax_open ? d < k->dmax : d <= k->dmax;
        if (!lo_ok || !hi_ok) {
            fmt_range(range, sizeof range, k);
            snprintf(why, whylen, "'%s' is out of range %s", text, range);
            return -EINVAL;
        }
        *(double *)dst = d;
        return 0;
    }
    case KT_UINT:
    case KT_U64: {
        const char *p = text;
        rc = parse_digits(&p, &v);
        if (rc == 0 && *p)
            rc = -EINVAL;
        break;
    }
    case KT_DURATION:
        rc = conf_parse_duration(text, &v);
        break;
    case KT_SIZE:
        rc = conf_parse_size(text, &v);
        break;
    }

    /* Integer-valued types: syntax, then range, then store. */
    if (rc == -EINVAL) {
        static const char *const hints[] = {
            [KT_UINT] = "a whole number", [KT_U64] = "a whole number",
            [KT_DURATION] = "a duration such as 250ms, 30s, 5m, 1h or 2d",
            [KT_SIZE] = "a size such as 512, 64k or 1M",
        };
        snprintf(why, whylen, "'%s' is not %s", text, hints[k->type]);
        return -EINVAL;
    }
    if (rc == -ERANGE || v < k->min || v > k->max) {
        fmt_range(range, sizeof range, k);
        snprintf(why, whylen, "'%s' is out of range %s", text, range);
        return -EINVAL;
    }
    if (k->type == KT_UINT || k->type == KT_SIZE)
        *(unsigned *)dst = (unsigned)v;
    else
        *(uint64_t *)dst = v;
    return 0;
}

static const struct key_def *find_key(enum sect_kind kind, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].sect == kind && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* --- parser state and messages ---------------------------------------- */

struct sect {
    enum sect_kind kind;
    size_t index;          /* SK_MODEL, SK_WEBHOOK: position in the conf array */
    int line;              /* of the header; 0 = not in the file */
    int key_line[N_KEYS];  /* where each key was set: 0 = default, < 0 = bad value */
};

struct error {
    int line;              /* 0 = not tied to a line */
    char msg[ERROR_MAX];
};

struct parse {
    const char *name;      /* file name in messages */
    const char *pos;       /* read_line's position in the text */
    int line;              /* number of the line last read */
    struct conf *c;
    locale_t num;          /* "C" numeric locale, whatever the process uses */
    struct sect *sects;    /* daemon, listen, store, then models and webhooks */
    size_t n_sects;
    enum { IN_NONE, IN_SECT, IN_SKIP } state;
    size_t cur;            /* IN_SECT: index into sects */
    struct error errs[MAX_ERRORS];
    size_t n_errs, n_dropped;
    bool oom;
};

static void add_error_v(struct parse *p, int line, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void add_error_v(struct parse *p, int line, const char *prefix, const char *fmt, va_list ap)
{
    if (p->n_errs == MAX_ERRORS) {
        p->n_dropped++;
        return;
    }
    struct error *e = &p->errs[p->n_errs++];
    int w = snprintf(e->msg, sizeof e->msg, "%s", prefix);
    e->line = line;
    if (w >= 0 && (size_t)w < sizeof e->msg)
        vsnprintf(e->msg + w, sizeof e->msg - (size_t)w, fmt, ap);
}

static void add_error(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct parse *p, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_v(p, line, "", fmt, ap);
    va_end(ap);
}

static void *sect_base(const struct parse *p, const struct sect *s)
{
    switch (s->kind) {
    case SK_MODEL:
        return &p->c->models[s->index];
    case SK_WEBHOOK:
        return &p->c->webhooks[s->index];
    default:
        return p->c;
    }
}

/* "[section] key: " followed by the formatted reason. */
static void key_error(struct parse *p, const struct sect *s, int line, const char *key,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void key_error(struct parse *p, const struct sect *s, int line, const char *key,
                      const char *fmt, ...)
{
    char prefix[CONF_NAME_MAX + 128];
    va_list ap;
    if (s->kind == SK_MODEL || s->kind == SK_WEBHOOK) {
        const char *name = s->kind == SK_MODEL ? p->c->models[s->index].name
                                               : p->c->webhooks[s->index].name;
        snprintf(prefix, sizeof prefix, "[%s.%s] %s: ", sect_names[s->kind], name, key);
    } else {
        snprintf(prefix, sizeof prefix, "[%s] %s: ", sect_names[s->kind], key);
    }
    va_start(ap, fmt);
    add_error_v(p, line, prefix, fmt, ap);
    va_end(ap);
}

/* --- sections ---------------------------------------------------------- */

/* A default that fails to parse is a bug in the table; it is reported like
 * a config error rather than trusted. */
static void apply_defaults(struct parse *p, const struct sect *s)
{
    char why[256];
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &keys[i];
        if (k->sect != s->kind || !k->def)
            continue;
        int rc = parse_value(k, sect_base(p, s), k->def, p->num, why, sizeof why);
        if (rc == -ENOMEM)
            p->oom = true;
        else if (rc)
            key_error(p, s, 0, k->name, "internal error: bad default: %s", why);
    }
}

static struct sect *add_sect(struct parse *p, enum sect_kind kind, size_t index, int line)
{
    struct sect *grown = realloc(p->sects, (p->n_sects + 1) * sizeof *grown);
    if (!grown) {
        p->oom = true;
        return NULL;
    }
    p->sects = grown;
    struct sect *s = &p->sects[p->n_sects++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->index = index;
    s->line = line;
    return s;
}

/* Appends a model or webhook named name (n bytes) with its defaults and
 * makes it the current section. */
static bool add_named(struct parse *p, enum sect_kind kind, const char *name, size_t n, int line)
{
    struct conf *c = p->c;
    char *copy = strndup(name, n);
    size_t index;
    struct sect *s;

    if (!copy)
        goto oom;
    if (kind == SK_MODEL) {
        struct conf_model *grown = realloc(c->models, (c->n_models + 1) * sizeof *grown);
        if (!grown)
            goto oom;
        c->models = grown;
        index = c->n_models++;
        grown[index] = (struct conf_model){ .name = copy };
    } else {
        struct conf_webhook *grown = realloc(c->webhooks, (c->n_webhooks + 1) * sizeof *grown);
        if (!grown)
            goto oom;
        c->webhooks = grown;
        index = c->n_webhooks++;
        grown[index] = (struct conf_webhook){ .name = copy };
    }
    s = add_sect(p, kind, index, line);
    if (!s)
        return false;
    p->cur = p->n_sects - 1;
    apply_defaults(p, s);
    return !p->oom;
oom:
    free(copy);
    p->oom = true;
    return false;
}

static const struct sect *find_named(const struct parse *p, enum sect_kind kind, const char *name,
                                     size_t n)
{
    for (size_t i = SK_STORE + 1; i < p->n_sects; i++) {
        const struct sect *s = &p->sects[i];
        const char *have;
        if (s->kind != kind)
            continue;
        have = kind == SK_MODEL ? p->c->models[s->index].name : p->c->webhooks[s->index].name;
        if (strlen(have) == n && memcmp(have, name, n) == 0)
            return s;
    }
    return NULL;
}

/* Handles "[s]" (n bytes inside the brackets). On error, keys up to the
 * next header are skipped: they would only repeat the same mistake. */
static void open_section(struct parse *p, const char *s, size_t n)
{
    const char *dot = memchr(s, '.', n);
    size_t kind_len = dot ? (size_t)(dot - s) : n;
    int kind = -1;

    for (int i = 0; i < SK_COUNT; i++)
        if (strlen(sect_names[i]) == kind_len && memcmp(sect_names[i], s, kind_len) == 0)
            kind = i;

    if (kind == SK_MODEL || kind == SK_WEBHOOK) {
        const char *name = dot ? dot + 1 : s + n;
        size_t name_len = (size_t)(s + n - name);
        const struct sect *prev;
        if (!valid_name(name, name_len)) {
            add_error(p, p->line, "[%.*s]: section needs a name of 1..%d of A-Z a-z 0-9 _ . -: "
                      "[%s.NAME]", (int)n, s, CONF_NAME_MAX, sect_names[kind]);
        } else if ((prev = find_named(p, (enum sect_kind)kind, name, name_len))) {
            add_error(p, p->line, "[%.*s]: duplicate section (first on line %d)", (int)n, s,
                      prev->line);
        } else if (add_named(p, (enum sect_kind)kind, name, name_len, p->line)) {
            p->state = IN_SECT;
        }
    } else if (kind >= 0 && !dot) {
        struct sect *sect = &p->sects[kind];
        if (sect->line) {
            add_error(p, p->line, "[%.*s]: duplicate section (first on line %d)", (int)n, s,
                      sect->line);
        } else {
            sect->line = p->line;
            p->cur = (size_t)kind;
            p->state = IN_SECT;
        }
    } else {
        add_error(p, p->line, "[%.*s]: unknown section (expected [daemon], [listen], [store], "
                  "[model.NAME] or [webhook.NAME])", (int)n, s);
    }
}

/* --- inih glue --------------------------------------------------------- */

/* inih's fgets-style reader. Each call hands inih one line, already reduced
 * to what this module accepts, so the result does not depend on how libinih
 * was built or on its runtime option globals:
 *  - leading whitespace is dropped, so inih never sees a continuation line;
 *  - comments are removed here, whether or not inih strips inline ones;
 *  - section headers are handled here, because inih truncates section
 *    names at 49 bytes and model names may have 64;
 *  - malformed lines are reported with their number and passed on empty.
 * It also numbers lines, since Debian's inih does not pass line numbers to
 * the handler: inih calls the handler for a line before reading the next. */
static char *read_line(char *buf, int size, void *stream)
{
    struct parse *p = stream;
    const char *s = p->pos, *end, *nl;

    if (!*s)
        return NULL;
    nl = strchr(s, '\n');
    end = nl ? nl : s + strlen(s);
    p->pos = nl ? nl + 1 : end;
    p->line++;
    buf[0] = '\0';

    if (p->line == 1 && end - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (s < end && is_blank(*s))
        s++;
    if (s < end && (*s == ';' || *s == '#'))
        end = s;
    for (const char *q = s + 1; q < end; q++) {
        if (*q == ';' && is_blank(q[-1])) {
            end = q;
            break;
        }
    }
    while (end > s && (is_blank(end[-1]) || end[-1] == '\r'))
        end--;

    size_t len = (size_t)(end - s);
    if (len == 0)
        return buf;
    /* Keys after a broken header would land in the previous section. */
    if (*s == '[')
        p->state = IN_SKIP;
    if (len >= (size_t)size) {
        add_error(p, p->line, "line is longer than %d bytes", size - 1);
        return buf;
    }
    for (const char *q = s; q < end; q++) {
        if ((*q >= 0 && *q < ' ' && *q != '\t') || *q == 0x7f) {
            add_error(p, p->line, "control character in line");
            return buf;
        }
    }
    if (*s == '[') {
        const char *close = memchr(s, ']', len);
        const char *b = s + 1, *e = close;
        if (!close || close + 1 != end) {
            add_error(p, p->line, "%s", close ? "text after section header"
                                              : "section header has no closing ]");
            return buf;
        }
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        open_section(p, b, (size_t)(e - b));
    } else {
        /* inih splits at the first '=' or ':'; a line with neither, or
         * with nothing before it, would be an inih error without detail. */
        size_t key_len = strcspn(s, "=:");
        if (key_len >= len || key_len == 0) {
            add_error(p, p->line, "expected 'key = value' or '[section]'");
            return buf;
        }
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    char why[256];
    /* read_line tracks the section: inih's copy may be truncated. */
    (void)section;

    if (p->state == IN_SKIP || p->oom)
        return 1;
    if (p->state == IN_NONE) {
        add_error(p, p->line, "%s: key outside any section", name);
        return 1;
    }
    struct sect *s = &p->sects[p->cur];
    const struct key_def *k = find_key(s->kind, name);
    if (!k) {
        key_error(p, s, p->line, name, "unknown key");
        return 1;
    }
    size_t i = (size_t)(k - keys);
    if (s->key_line[i]) {
        key_error(p, s, p->line, name, "duplicate key (first set on line %d)", abs(s->key_line[i]));
        return 1;
    }
    s->key_line[i] = p->line;
    int rc = parse_value(k, sect_base(p, s), value, p->num, why, sizeof why);
    if (rc == -ENOMEM) {
        p->oom = true;
    } else if (rc) {
        s->key_line[i] = -p->line;
        key_error(p, s, p->line, k->name, "%s", why);
    }
    /* Errors are collected in p; inih's own error count is not used. */
    return 1;
}

/* --- rules across keys ------------------------------------------------- */

static size_t key_index(enum sect_kind kind, const char *name)
{
    return (size_t)(find_key(kind, name) - keys);
}

/* Line to cite for a key in a cross-key message: where it was set, or 0. */
static int cite(const struct sect *s, size_t key)
{
    return abs(s->key_line[key]);
}

/* Cross-key rules of the slice and alarm keys. */
static void check_model_sizes(struct parse *p, const struct sect *s, const struct conf_model *m)
{
    size_t ref_min = key_index(SK_MODEL, "reference.min_size");
    size_t alarm_k = key_index(SK_MODEL, "alarm.k");

    if (s->key_line[ref_min] > 0 && m->reference_min_size > m->reference_size)
        key_error(p, s, cite(s, ref_min), "reference.min_size", "%u is larger than "
                  "reference.size (%u)", m->reference_min_size, m->reference_size);
    if (m->alarm_k > m->alarm_m)
        key_error(p, s, cite(s, alarm_k), "alarm.k", "%u is larger than alarm.m (%u)",
                  m->alarm_k, m->alarm_m);
}

/* Both signals come from the predicted scores. */
static void check_model_stream(struct parse *p, const struct sect *s, const struct conf_model *m)
{
    size_t detectors = key_index(SK_MODEL, "stream.detectors");

    if (m->stream_detectors && !m->scores_width)
        key_error(p, s, cite(s, detectors), "stream.detectors",
                  "the streaming detectors watch predicted scores: set scores.width");
}

static void check_model(struct parse *p, const struct sect *s)
{
    const struct conf_model *m = &p->c->models[s->index];
    size_t size = key_index(SK_MODEL, "window.size");
    size_t interval = key_index(SK_MODEL, "window.interval");
    size_t on_drift = key_index(SK_MODEL, "on_drift");

    if (s->key_line[size] >= 0 && s->key_line[interval] >= 0 && m->window_size == 0 &&
        m->window_interval_us == 0)
        key_error(p, s, cite(s, size) ? cite(s, size) : cite(s, interval), "window.size",
                  "set window.size, window.interval or both");
    if (m->on_drift && !conf_webhook_find(p->c, m->on_drift))
        key_error(p, s, cite(s, on_drift), "on_drift", "no [webhook.%s] section", m->on_drift);
    check_model_sizes(p, s, m);
    check_model_stream(p, s, m);
}

static void check_webhook(struct parse *p, const struct sect *s)
{
    const struct conf_webhook *w = &p->c->webhooks[s->index];
    size_t initial = key_index(SK_WEBHOOK, "retry.initial");

    if (w->retry_initial_us > w->retry_max_delay_us)
        key_error(p, s, cite(s, initial), "retry.initial", "longer than retry.max_delay");
}

static void check_listen_overlap(struct parse *p)
{
    const struct conf *c = p->c;
    const struct sect *s = &p->sects[SK_LISTEN];
    size_t http = key_index(SK_LISTEN, "http");
    for (size_t i = 0; i < c->n_http; i++)
        for (size_t j = 0; j < c->n_ingest; j++)
            if (strcmp(c->http[i], c->ingest[j]) == 0)
                key_error(p, s, cite(s, http), "http", "'%s' is also an ingest address",
                          c->http[i]);
}

static void check_all(struct parse *p)
{
    for (size_t i = 0; i < p->n_sects; i++) {
        const struct sect *s = &p->sects[i];
        for (size_t k = 0; k < N_KEYS; k++)
            if (keys[k].sect == s->kind && !keys[k].def && !s->key_line[k])
                key_error(p, s, 0, keys[k].name, "required key is missing");
        if (s->kind == SK_MODEL)
            check_model(p, s);
        else if (s->kind == SK_WEBHOOK)
            check_webhook(p, s);
    }
    check_listen_overlap(p);
    if (p->c->n_models == 0)
        add_error(p, 0, "no [model.NAME] section: at least one model is required");
}

/* --- loading ----------------------------------------------------------- */

static void format_errors(struct parse *p, char *err, size_t errlen)
{
    size_t used = 0;

    /* Earliest line first; messages without a line go last. Insertion sort
     * keeps the discovery order among equals. */
    for (size_t i = 1; i < p->n_errs; i++) {
        struct error e = p->errs[i];
        unsigned key = e.line ? (unsigned)e.line : UINT_MAX;
        size_t j = i;
        for (; j > 0 && (p->errs[j - 1].line ? (unsigned)p->errs[j - 1].line : UINT_MAX) > key; j--)
            p->errs[j] = p->errs[j - 1];
        p->errs[j] = e;
    }
    for (size_t i = 0; i <= p->n_errs && used < errlen; i++) {
        int w;
        if (i == p->n_errs) {
            if (!p->n_dropped)
                break;
            w = snprintf(err + used, errlen - used, "\n%s: %zu more errors not shown", p->name,
                         p->n_dropped);
        } else if (p->errs[i].line) {
            w = snprintf(err + used, errlen - used, "%s%s:%d: %s", i ? "\n" : "", p->name,
                         p->errs[i].line, p->errs[i].msg);
        } else {
            w = snprintf(err + used, errlen - used, "%s%s: %s", i ? "\n" : "", p->name,
                         p->errs[i].msg);
        }
        used += w > 0 ? (size_t)w : 0;
    }
}

static int load_text(const char *text, const char *name, struct conf **out, char *err,
                     size_t errlen)
{
    struct parse p = { .name = name, .pos = text };
    int rc = -ENOMEM;

    *out = NULL;
    if (errlen)
        err[0] = '\0';
    /* Config files are small; the cap keeps a wrong path (a log, a device)
     * from being parsed whole and keeps line numbers far from overflow. */
    if (strnlen(text, FILE_MAX + 1) > FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes", name, (unsigned)FILE_MAX);
        return -EFBIG;
    }
    p.c = calloc(1, sizeof *p.c);
    p.num = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!p.c || !p.num || !(p.c->path = strdup(name)))
        goto done;
    for (int kind = SK_DAEMON; kind <= SK_STORE; kind++) {
        struct sect *s = add_sect(&p, (enum sect_kind)kind, 0, 0);
        if (!s)
            goto done;
        apply_defaults(&p, s);
    }
    if (p.oom)
        goto done;

    int ini_rc = ini_parse_stream(read_line, &p, on_key, &p);
    if (ini_rc < 0 || p.oom)
        goto done;
    /* read_line passes inih only well-formed lines, so this is a soft
     * assertion in case a libinih build disagrees about what that is. */
    if (ini_rc > 0 && p.n_errs == 0)
        add_error(&p, ini_rc, "syntax error");
    check_all(&p);

    if (p.n_errs) {
        format_errors(&p, err, errlen);
        rc = -1;
    } else {
        *out = p.c;
        p.c = NULL;
        rc = 0;
    }
done:
    if (rc == -ENOMEM && errlen)
        snprintf(err, errlen, "%s: out of memory", name);
    conf_free(p.c);
    free(p.sects);
    if (p.num)
        freelocale(p.num);
    return rc;
}

int conf_load_string(const char *text, const char *name_for_errors, struct conf **out, char *err,
                     size_t errlen)
{
    return load_text(text, name_for_errors ? name_for_errors : "<string>", out, err, errlen);
}

/* Reads at most FILE_MAX + 1 bytes, enough for load_text to tell that a
 * file is too large. Returns 0 or -errno. */
static int read_file(const char *path, char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    size_t used = 0, cap = 4096;
    char *buf = NULL;
    int rc = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        if (used == cap || !buf) {
            char *grown;
            cap = buf ? cap * 2 : cap;
            grown = realloc(buf, cap + 1);
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            buf = grown;
        }
        ssize_t r = read(fd, buf + used, cap - used);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -errno;
        if (r <= 0)
            break;
        used += (size_t)r;
        if (used > FILE_MAX)
            break;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    *out_len = used;
    return 0;
}

int conf_load(const char *path, struct conf **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    rc = read_file(path, &text, &len);
    if (rc) {
        errno = -rc;
        snprintf(err, errlen, "%s: %m", path);
        /* -1 means invalid content, so -EPERM cannot be returned as is. */
        return rc == -EPERM ? -EACCES : rc;
    }
    /* The parser works on C strings: a NUL would silently end the file. */
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        rc = -1;
    } else {
        rc = load_text(text, path, out, err, errlen);
    }
    free(text);
    return rc;
}

/* --- the loaded struct ------------------------------------------------- */

static void free_fields(void *base, enum sect_kind kind)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &keys[i];
        if (k->sect != kind)
            continue;
        if (k->type == KT_STRING)
            free(*(char **)field(base, k->off));
        else if (k->type == KT_LIST)
            free_list(*(char ***)field(base, k->off), *(size_t *)field(base, k->count_off));
    }
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    for (int kind = SK_DAEMON; kind <= SK_STORE; kind++)
        free_fields(c, (enum sect_kind)kind);
    for (size_t i = 0; i < c->n_models; i++) {
        free_fields(&c->models[i], SK_MODEL);
        free(c->models[i].name);
    }
    for (size_t i = 0; i < c->n_webhooks; i++) {
        free_fields(&c->webhooks[i], SK_WEBHOOK);
        free(c->webhooks[i].name);
    }
    free(c->models);
    free(c->webhooks);
    free(c->path);
    free(c);
}

/* The number after "name:" when ITEM names NAME (LEN bytes), else -1. */
static double floor_item(const char *item, const char *name, size_t len)
{
    return strncmp(item, name, len) == 0 && item[len] == ':' ? strtod(item + len + 1, NULL)
                                                              : -1;
}

double conf_floor_find(char *const *items, size_t n, double dflt, const char *test)
{
    size_t family = strcspn(test, "_");
    double v;

    for (size_t i = 0; i < n; i++)
        if ((v = floor_item(items[i], test, strlen(test))) >= 0)
            return v;
    for (size_t i = 0; i < n; i++)
        if ((v = floor_item(items[i], test, family)) >= 0)
            return v;
    return dflt;
}

double conf_effect_floor(const struct conf_model *m, const char *test)
{
    return conf_floor_find(m->effect_floor_by_test, m->n_effect_floor_by_test, m->effect_floor,
                           test);
}

const struct conf_model *conf_model_find(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    return NULL;
}

const struct conf_webhook *conf_webhook_find(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_webhooks; i++)
        if (strcmp(c->webhooks[i].name, name) == 0)
            return &c->webhooks[i];
    return NULL;
}

static bool same_value(const struct key_def *k, const void *a, const void *b)
{
    const void *x = cfield(a, k->off), *y = cfield(b, k->off);
    switch (k->type) {
    case KT_STRING: {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        return s == t || (s && t && strcmp(s, t) == 0);
    }
    case KT_LIST: {
        size_t n = *(const size_t *)cfield(a, k->count_off);
        char *const *s = *(char **const *)x, *const *t = *(char **const *)y;
        if (n != *(const size_t *)cfield(b, k->count_off))
            return false;
        for (size_t i = 0; i < n; i++)
            if (strcmp(s[i], t[i]) != 0)
                return false;
        return true;
    }
    case KT_UINT:
    case KT_SIZE:
    case KT_ENUM:
    case KT_FLAGS:
        return *(const unsigned *)x == *(const unsigned *)y;
    case KT_U64:
    case KT_DURATION:
        return *(const uint64_t *)x == *(const uint64_t *)y;
    case KT_DOUBLE:
        return *(const double *)x == *(const double *)y;
    }
    return false;
}

struct out {
    char *buf;
    size_t len, used;
};

static void out_add(struct out *o, const char *prefix, const char *name)
{
    int w;
    if (o->used >= o->len)
        return;
    w = snprintf(o->buf + o->used, o->len - o->used, "%s%s%s", o->used ? ", " : "", prefix, name);
    o->used += w > 0 ? (size_t)w : 0;
}

static size_t diff_section(const void *a, const void *b, enum sect_kind kind, const char *label,
                           struct out *o)
{
    size_t n = 0;
    char prefix[CONF_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, "%s.", label);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &keys[i];
        if (k->sect == kind && !k->reload && !same_value(k, a, b)) {
            out_add(o, prefix, k->name);
            n++;
        }
    }
    return n;
}

size_t conf_restart_keys(const struct conf *old, const struct conf *new_, char *buf, size_t len)
{
    struct out o = { buf, len, 0 };
    size_t n = 0;
    char label[CONF_NAME_MAX + 16];

    if (len)
        buf[0] = '\0';
    for (int kind = SK_DAEMON; kind <= SK_STORE; kind++)
        n += diff_section(old, new_, (enum sect_kind)kind, sect_names[kind], &o);
    for (size_t i = 0; i < new_->n_models; i++) {
        const struct conf_model *m = conf_model_find(old, new_->models[i].name);
        if (!m)
            continue;
        snprintf(label, sizeof label, "model.%s", m->name);
        n += diff_section(m, &new_->models[i], SK_MODEL, label, &o);
    }
    for (size_t i = 0; i < new_->n_webhooks; i++) {
        const struct conf_webhook *w = conf_webhook_find(old, new_->webhooks[i].name);
        if (!w)
            continue;
        snprintf(label, sizeof label, "webhook.%s", w->name);
        n += diff_section(w, &new_->webhooks[i], SK_WEBHOOK, label, &o);
    }
    return n;
}

void conf_print_defaults(FILE *f)
{
    fputs("; driftd configuration keys, generated by `driftd --print-defaults`.\n"
          "; Each key: what it does; its type and range; whether a change applies on\n"
          "; reload (SIGHUP) or needs a restart; then the key with its default.\n"
          "; Durations: 250ms, 30s, 5m, 1h, 2d (bare number = seconds).\n"
          "; Sizes: 512, 64k, 1M, 1G. Lists: comma separated.\n", f);
    for (int kind = 0; kind < SK_COUNT; kind++) {
        bool named = kind == SK_MODEL || kind == SK_WEBHOOK;
        fprintf(f, "\n\n; %s\n[%s%s]\n", sect_docs[kind], sect_names[kind], named ? ".NAME" : "");
        for (size_t i = 0; i < N_KEYS; i++) {
            const struct key_def *k = &keys[i];
            char range[160];
            if ((int)k->sect != kind)
                continue;
            switch (k->type) {
            case KT_ENUM:
            case KT_FLAGS:
                fmt_names(range, sizeof range, k->names);
                break;
            case KT_STRING:
                snprintf(range, sizeof range, "at most %" PRIu64 " bytes", k->max);
                break;
            case KT_LIST:
                snprintf(range, sizeof range, "%" PRIu64 "..%" PRIu64 " items", k->min, k->max);
                break;
            default:
                fmt_range(range, sizeof range, k);
                break;
            }
            fprintf(f, "\n; %s\n; %s: %s; %s%s\n;%s =%s%s\n", k->doc, type_names[k->type], range,
                    k->def ? "" : "required; ", k->reload ? "reloadable" : "restart to change",
                    k->name, k->def && *k->def ? " " : "", k->def ? k->def : "");
        }
    }
}

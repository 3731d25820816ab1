/* conf: driftd's INI configuration, parsed with inih into one validated,
 * immutable struct. Reload = load a new struct, then swap; keep the old one
 * if loading fails.
 *
 * Units: every *_us field is microseconds. Ownership: a struct conf owns all
 * of its strings and arrays; conf_free releases everything. Thread-safety: no
 * globals; parsing only reads libinih's option globals, so loads may run
 * concurrently. A loaded struct is never modified and may be shared freely.
 *
 * Accepted syntax: `[section]`, `key = value` (or `key: value`), comments
 * on their own line starting with `;` or `#`, and inline comments starting
 * with `;` after whitespace (so a value cannot contain " ;"). Leading
 * whitespace is ignored: there are no continuation lines. Lines are limited
 * to what libinih reads in one piece (199 bytes in Debian's build). */
#ifndef DRIFTD_CONF_H
#define DRIFTD_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum conf_correction { CONF_CORR_BH, CONF_CORR_BONFERRONI, CONF_CORR_NONE };
enum conf_persist { CONF_PERSIST_RAW, CONF_PERSIST_PROJECTED, CONF_PERSIST_NONE };
enum conf_storage { CONF_STORAGE_FLOAT32, CONF_STORAGE_FLOAT16 };
/* Same order as syslog priorities: a message is logged when its level is <=
 * the configured one. */
enum conf_log_level { CONF_LOG_ERR, CONF_LOG_WARNING, CONF_LOG_NOTICE, CONF_LOG_INFO, CONF_LOG_DEBUG };

/* Detector bitmask; the config names are in comments where they differ. */
#define CONF_DET_MMD         (1u << 0)
#define CONF_DET_CENTROID    (1u << 1)
#define CONF_DET_ENERGY      (1u << 2)
#define CONF_DET_KS_DIMS     (1u << 3)
#define CONF_DET_CALIBRATION (1u << 4)
#define CONF_DET_HEALTH      (1u << 5) /* health: embedding health (rank, uniformity) */
#define CONF_DET_SCORES      (1u << 6) /* scores: univariate tests on predicted scores */
#define CONF_DET_CLASSIFIER  (1u << 7)

/* Webhook event bitmask ([webhook.NAME] events); config names in comments. */
#define CONF_EV_DRIFT        (1u << 0) /* drift.detected */
#define CONF_EV_CALIBRATION  (1u << 1) /* calibration.degraded */
#define CONF_EV_COLLAPSE     (1u << 2) /* embedding.collapse */
#define CONF_EV_STREAM       (1u << 3) /* stream.alarm */

/* Streaming detectors ([model.NAME] stream.detectors) and the per-record
 * signals they watch (stream.signals); config names in comments. */
#define CONF_STREAM_PH       (1u << 0) /* page_hinkley */
#define CONF_STREAM_ADWIN    (1u << 1) /* adwin */
#define CONF_SIGNAL_SCORE    (1u << 0) /* score: positive-class or top score */
#define CONF_SIGNAL_ERROR    (1u << 1) /* error: 0/1 once the label is known */
/* Which changes of the mean Page-Hinkley reports. */
enum conf_direction { CONF_DIR_BOTH, CONF_DIR_UP, CONF_DIR_DOWN };

/* Address ranges a webhook may reach besides public ones ([webhook.NAME]
 * allow_addresses); config names in comments. */
#define CONF_ALLOW_LOOPBACK   (1u << 0) /* loopback: 127.0.0.0/8, ::1 */
#define CONF_ALLOW_PRIVATE    (1u << 1) /* private: 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 */
#define CONF_ALLOW_LINK_LOCAL (1u << 2) /* link_local: 169.254/16 (cloud metadata), fe80::/10 */

/* Model and webhook names: 1..64 of [A-Za-z0-9_.-]. */
#define CONF_NAME_MAX 64

struct conf_model {
    char *name;                    /* from [model.NAME] */
    unsigned dim;                  /* 1..65536 */
    char **slice_by;               /* label keys defining a slice, in order; */
    size_t n_slice_by;             /* 0 = only the whole-model slice, max 8 */
    unsigned reference_size;       /* >= 2 */
    unsigned window_size;          /* records; 0 = window closes by time only */
    uint64_t window_interval_us;   /* 0 = by count only; size or interval is set */
    unsigned window_min_size;      /* a window closing with fewer records is not tested */
    unsigned reference_min_size;   /* a slice's own reference needs this many, else "*"'s */
    uint64_t slice_idle_us;        /* a slice without records this long is dropped; 0 = never */
    unsigned detectors;            /* CONF_DET_* mask, never 0 */
    unsigned mmd_permutations;     /* 0..100000 */
    unsigned mmd_bandwidth_points; /* subsample size for the median heuristic */
    double centroid_threshold;     /* cosine distance flagged as drift, in (0, 2] */
    unsigned energy_permutations;  /* 0..100000 */
    unsigned classifier_permutations; /* 0..100000 */
    double classifier_holdout;     /* share of each sample held out, (0, 1) */
    double classifier_l2;          /* ridge penalty on standardised weights */
    unsigned classifier_max_iter;  /* L-BFGS iterations */
    double health_collapse_drop;   /* relative effective-rank drop flagged, (0, 1] */
    double health_uniformity_rise; /* rise of uniformity flagged, (0, 4] */
    double health_norm_change;     /* relative change of the mean norm flagged */
    double health_duplicate_rise;  /* rise of the near-duplicate share flagged, (0, 1] */
    double health_duplicate_cosine; /* cosine similarity of near-duplicates, (0, 1] */
    double scores_psi_threshold;   /* PSI flagged as drift */
    double scores_js_threshold;    /* Jensen-Shannon distance flagged, (0, 1] */
    unsigned projection_dim;       /* random projection for mmd, energy, classifier; 0 = off */
    unsigned detector_memory;      /* bytes one detector may allocate for a window */
    double alpha;                  /* in (0, 1) */
    enum conf_correction correction;
    double effect_floor;           /* >= 0; effect size needed besides p < alpha */
    char **effect_floor_by_test;   /* "test:number" overrides of effect_floor */
    size_t n_effect_floor_by_test;
    unsigned alarm_k, alarm_m;     /* a slice alarms when k of its last m windows drifted */
    unsigned scores_width;         /* scores per record: 0 none, 1 binary, K classes */
    enum conf_storage storage;     /* how reference and window rows are kept */
    uint64_t labels_ttl_us;        /* a record waits this long for its label */
    unsigned labels_max_pending;   /* records waiting for a label, per model */
    unsigned calibration_min_labels; /* labeled records a calibration result needs */
    double calibration_ece_margin;   /* ECE above the reference by more: degraded */
    double calibration_brier_margin; /* Brier above the reference by more: degraded */
    unsigned max_slices;           /* distinct slices tracked per model */
    unsigned max_queued_windows;   /* backpressure above this many in flight */
    uint64_t seed;
    char *on_drift;                /* name of a defined webhook, or NULL */
    /* Streaming detectors on per-record signals (alarms between windows) */
    unsigned stream_detectors;     /* CONF_STREAM_* mask; 0 = off; needs scores_width */
    unsigned stream_signals;       /* CONF_SIGNAL_* mask, never 0 */
    double stream_ph_delta;        /* change of the mean tolerated, > 0 */
    double stream_ph_threshold;    /* lambda, > 0 */
    unsigned stream_ph_min_samples; /* no alarm before this many values */
    double stream_ph_forget;       /* fading factor in (0, 1]; 1 = classic test */
    enum conf_direction stream_ph_direction;
    double stream_adwin_delta;     /* confidence, (0, 1) */
    unsigned stream_adwin_clock;   /* values between two checks for a cut */
    unsigned stream_adwin_max_buckets; /* per bucket size, 2..16 */
    unsigned stream_adwin_min_window;  /* shortest part of a cut */
    uint64_t stream_alarm_interval_us; /* between two alarms recorded per detector,
                                        * signal and slice */
};

struct conf_webhook {
    char *name;                    /* from [webhook.NAME] */
    char *url;                     /* http:// or https:// */
    char **secrets;                /* whsec_<base64> of 24..64 bytes; every one signs */
    size_t n_secrets;              /* each delivery (rotation); 1..8 */
    uint64_t cooldown_us;
    uint64_t timeout_us;
    uint64_t retry_horizon_us;
    unsigned max_attempts;
    uint64_t retry_initial_us;     /* first retry delay; doubles per attempt */
    uint64_t retry_max_delay_us;   /* cap of one delay; >= retry_initial_us */
    unsigned events;               /* CONF_EV_* mask, never 0 */
    unsigned allow_addresses;      /* CONF_ALLOW_* mask; 0 = public addresses only */
    char *ca_file;                 /* PEM CA bundle for https; NULL = system store */
    unsigned payload_max_slices;   /* slices listed in one event; the rest are counted */
};

struct conf {
    char *path;                    /* file name as given to the loader */
    /* [daemon] */
    char *state_dir;               /* absolute path */
    unsigned workers;              /* 0 = one per CPU */
    enum conf_log_level log_level;
    uint64_t shutdown_timeout_us;
    unsigned webhook_concurrency;  /* delivery attempts in flight at once */
    uint64_t webhook_poll_us;      /* how often the outbox is checked for due rows */
    uint64_t job_timeout_us;       /* 0 = jobs never count as wedged */
    uint64_t status_interval_us;   /* sd_notify STATUS= refresh */
    /* [listen]: addresses are tcp://HOST:PORT (HOST may be [v6]) or unix:/path */
    char **ingest;                 /* >= 1 address */
    size_t n_ingest;
    char **http;                   /* 0 addresses = HTTP side port disabled */
    size_t n_http;
    char *token;                   /* NULL = no client authentication */
    unsigned max_line;             /* bytes, 1 KiB..64 MiB */
    unsigned max_frame;            /* bytes, header included, 1 KiB..64 MiB */
    unsigned max_body;             /* HTTP request body, bytes */
    unsigned max_connections;
    uint64_t idle_timeout_us;
    uint64_t handshake_timeout_us;
    uint64_t frame_timeout_us;
    uint64_t http_timeout_us;
    unsigned metrics_max_slices;   /* per model, slices with their own /metrics series */
    /* [store] */
    char *dsn;                     /* libpq connection string, never NULL */
    enum conf_persist persist_reference;
    uint64_t query_timeout_us;
    unsigned max_pending;          /* closed windows queued in memory for the database */
    unsigned journal_max;          /* bytes of the spill journal in state_dir */
    unsigned persist_projection_dim; /* persist_reference = projected: kept dimensions */
    uint64_t read_timeout_us;      /* JSON API reads, queue wait included */
    unsigned read_max_rows;        /* rows one JSON API read returns at most */
    struct conf_model *models;     /* >= 1, in file order */
    size_t n_models;
    struct conf_webhook *webhooks; /* in file order */
    size_t n_webhooks;
};

/* Parse and validate a config file. On success stores a new struct in *out
 * and returns 0. On failure returns -1 for invalid content, -EFBIG above
 * 1 MiB, -ENOMEM, or -errno when the file cannot be read, and writes the
 * reasons to err (always
 * NUL-terminated when errlen > 0): one line per problem, at most 8, earliest
 * first, each "FILE:LINE: [section] key: reason", or "FILE: [section] key:
 * reason" for problems not tied to a line (a missing required key). Values
 * of secret keys (token, dsn, secret) are never quoted in messages. */
int conf_load(const char *path, struct conf **out, char *err, size_t errlen);
/* Same for text in memory; name_for_errors stands for FILE in messages and
 * becomes conf->path. */
int conf_load_string(const char *text, const char *name_for_errors, struct conf **out,
                     char *err, size_t errlen);
/* Accepts NULL. */
void conf_free(struct conf *c);

/* The effect-size floor of TEST: the effect_floor.by_test item naming it,
 * else one naming its detector (the part before the first '_': "centroid"
 * covers centroid_cosine), else effect_floor. */
double conf_effect_floor(const struct conf_model *m, const char *test);
/* The same rule over a copy of the items and the default. */
double conf_floor_find(char *const *items, size_t n, double dflt, const char *test);

/* NULL when absent. */
const struct conf_model *conf_model_find(const struct conf *c, const char *name);
const struct conf_webhook *conf_webhook_find(const struct conf *c, const char *name);

/* Keys whose new value only takes effect after a restart: writes those that
 * differ between old and new_ as "daemon.workers, model.NAME.dim" into buf
 * (truncated to len, NUL-terminated when len > 0) and returns how many
 * differ. Models present in only one of the two are not compared: the
 * caller decides whether it can add or drop a model on reload. */
size_t conf_restart_keys(const struct conf *old, const struct conf *new_, char *buf, size_t len);

/* Writes every key with its doc line, type, range, default and whether it
 * is reloadable, as an INI file made only of comments and section headers. */
void conf_print_defaults(FILE *f);

/* "250ms", "30s", "5m", "1h", "2d", "10us"; a bare number is seconds.
 * Returns 0, -EINVAL for bad syntax or -ERANGE on overflow. */
int conf_parse_duration(const char *s, uint64_t *us);
/* "512", "64k", "1M", "1G" (binary multiples, either case).
 * Returns 0, -EINVAL or -ERANGE. */
int conf_parse_size(const char *s, uint64_t *bytes);

#endif

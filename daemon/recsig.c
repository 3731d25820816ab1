/* Per-record signals and the streaming detectors of every slice. */
#include "recsig.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

static const char *const signal_names[RSIG_SIGNALS] = {
	[RSIG_SCORE] = "score", [RSIG_ERROR] = "error",
};
static const char *const detector_names[RSIG_DETECTORS] = {
	[RSIG_PH] = "page_hinkley", [RSIG_ADWIN] = "adwin",
};
static const unsigned signal_flags[RSIG_SIGNALS] = {
	[RSIG_SCORE] = CONF_SIGNAL_SCORE, [RSIG_ERROR] = CONF_SIGNAL_ERROR,
};

/* One signal of one slice. */
struct watch {
	struct stream_ph ph;
	struct stream_adwin *adwin;	/* into the slice's block; NULL: off */
	uint64_t adwin_seen;		/* values since ADWIN's last change */
	int64_t last_alarm_us[RSIG_DETECTORS];	/* 0: none yet */
};

struct rsig_slice {
	uint64_t hash;
	char *key;			/* into the same block */
	struct watch w[RSIG_SIGNALS];
};

struct rsig_model {
	struct rsig_params p;
	uint64_t interval_us;
	size_t slice_bytes;		/* one slice's block */
	struct rsig_slice **slices;	/* insertion order */
	size_t n_slices, cap;
	struct rsig_slice **table;	/* open addressing, power of two */
	size_t table_size;
};

const char *rsig_signal_name(enum rsig_signal s)
{
	return (unsigned)s < RSIG_SIGNALS ? signal_names[s] : "unknown";
}

const char *rsig_detector_name(enum rsig_detector d)
{
	return (unsigned)d < RSIG_DETECTORS ? detector_names[d] : "unknown";
}

/* ---- signals ---- */

double rsig_score(const float *scores, unsigned k)
{
	float top;

	if (k <= 2)
		return k == 2 ? (double)scores[1] : (double)scores[0];
	top = scores[0];
	for (unsigned i = 1; i < k; i++)
		if (scores[i] > top)
			top = scores[i];
	return (double)top;
}

unsigned rsig_predicted(const float *scores, unsigned k)
{
	unsigned best = 0;

	if (k == 1)
		return scores[0] >= 0.5f;
	for (unsigned i = 1; i < k; i++)
		if (scores[i] > scores[best])
			best = i;
	return best;
}

double rsig_error(const float *scores, unsigned k, int64_t label)
{
	return label == (int64_t)rsig_predicted(scores, k) ? 0.0 : 1.0;
}

/* ---- parameters ---- */

struct rsig_params rsig_params_of(const struct conf_model *cfg)
{
	static const enum stream_dir dirs[] = {
		[CONF_DIR_BOTH] = STREAM_BOTH, [CONF_DIR_UP] = STREAM_UP,
		[CONF_DIR_DOWN] = STREAM_DOWN,
	};

	return (struct rsig_params){
		.detectors = cfg->stream_detectors,
		.signals = cfg->stream_signals,
		.ph = {
			.delta = cfg->stream_ph_delta,
			.threshold = cfg->stream_ph_threshold,
			.forget = cfg->stream_ph_forget,
			.min_samples = cfg->stream_ph_min_samples,
			.dir = dirs[cfg->stream_ph_direction],
		},
		.adwin = {
			.delta = cfg->stream_adwin_delta,
			.clock = cfg->stream_adwin_clock,
			.max_buckets = cfg->stream_adwin_max_buckets,
			.min_window = cfg->stream_adwin_min_window,
		},
	};
}

bool rsig_same_params(const struct rsig_params *a, const struct rsig_params *b)
{
	return a->detectors == b->detectors && a->signals == b->signals &&
	       a->ph.delta == b->ph.delta && a->ph.threshold == b->ph.threshold &&
	       a->ph.forget == b->ph.forget &&
	       a->ph.min_samples == b->ph.min_samples && a->ph.dir == b->ph.dir &&
	       a->adwin.delta == b->adwin.delta && a->adwin.clock == b->adwin.clock &&
	       a->adwin.max_buckets == b->adwin.max_buckets &&
	       a->adwin.min_window == b->adwin.min_window;
}

/* The shortest of %.15g and %.17g that reads back as V: 0.025, not
 * 0.025000000000000001. */
static const char *shortest(double v, char buf[32])
{
	snprintf(buf, 32, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, 32, "%.17g", v);
	return buf;
}

const char *rsig_params_json(const struct rsig_params *p,
			     enum rsig_detector d, char *buf, size_t len)
{
	static const char *const dirs[] = {
		[STREAM_UP] = "up", [STREAM_DOWN] = "down", [STREAM_BOTH] = "both",
	};
	char a[32], b[32], c[32];

	if (d == RSIG_PH)
		snprintf(buf, len, "{\"delta\":%s,\"threshold\":%s,"
			 "\"min_samples\":%u,\"forget\":%s,\"direction\":\"%s\"}",
			 shortest(p->ph.delta, a), shortest(p->ph.threshold, b),
			 p->ph.min_samples, shortest(p->ph.forget, c),
			 dirs[p->ph.dir & STREAM_BOTH]);
	else
		snprintf(buf, len, "{\"delta\":%s,\"clock\":%u,"
			 "\"max_buckets\":%u,\"min_window\":%u}",
			 shortest(p->adwin.delta, a), p->adwin.clock,
			 p->adwin.max_buckets, p->adwin.min_window);
	return buf;
}

/* ---- slices ---- */

static bool watches(const struct rsig_params *p, enum rsig_signal s)
{
	return p->signals & signal_flags[s];
}

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static struct rsig_slice **table_slot(struct rsig_slice **table, size_t size,
				      const char *key, uint64_t h)
{
	size_t i = h & (size - 1);

	while (table[i] && (table[i]->hash != h || strcmp(table[i]->key, key)))
		i = (i + 1) & (size - 1);
	return &table[i];
}

static int table_rebuild(struct rsig_model *m, size_t size)
{
	struct rsig_slice **t = calloc(size, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_slices; i++)
		*table_slot(t, size, m->slices[i]->key, m->slices[i]->hash) =
			m->slices[i];
	free(m->table);
	m->table = t;
	m->table_size = size;
	return 0;
}

/* Both detectors of every watched signal start over. */
static void slice_start(const struct rsig_model *m, struct rsig_slice *sl)
{
	for (int s = 0; s < RSIG_SIGNALS; s++) {
		struct watch *w = &sl->w[s];
		struct stream_adwin *a = w->adwin;

		memset(w, 0, sizeof(*w));
		w->adwin = a;
		stream_ph_init(&w->ph, &m->p.ph);
		if (a)
			stream_adwin_init(a, &m->p.adwin);
	}
}

/* The slice struct, then one ADWIN state per watched signal when ADWIN
 * is on, then the key: one block. */
static size_t adwin_states(const struct rsig_params *p)
{
	size_t n = 0;

	for (int s = 0; (p->detectors & CONF_STREAM_ADWIN) && s < RSIG_SIGNALS; s++)
		n += watches(p, (enum rsig_signal)s);
	return n;
}

static struct rsig_slice *slice_new(const struct rsig_model *m, const char *key)
{
	size_t keylen = strlen(key) + 1;
	struct rsig_slice *sl = calloc(1, m->slice_bytes + keylen);
	struct stream_adwin *a;

	if (!sl)
		return NULL;
	a = (struct stream_adwin *)(sl + 1);
	for (int s = 0; s < RSIG_SIGNALS; s++)
		if ((m->p.detectors & CONF_STREAM_ADWIN) &&
		    watches(&m->p, (enum rsig_signal)s))
			sl->w[s].adwin = a++;
	sl->key = (char *)sl + m->slice_bytes;
	memcpy(sl->key, key, keylen);
	sl->hash = hash_key(key);
	slice_start(m, sl);
	return sl;
}

struct rsig_model *rsig_new(const struct rsig_params *p, uint64_t interval_us)
{
	struct rsig_model *m;
	struct stream_ph ph;
	struct stream_adwin *probe;
	bool ok;

	if (!(p->detectors & (CONF_STREAM_PH | CONF_STREAM_ADWIN)) ||
	    !(p->signals & (CONF_SIGNAL_SCORE | CONF_SIGNAL_ERROR)))
		return NULL;
	/* Invalid parameters are refused here, once, not per slice. */
	if (!(probe = malloc(sizeof(*probe))))
		return NULL;
	ok = stream_ph_init(&ph, &p->ph) && stream_adwin_init(probe, &p->adwin);
	free(probe);
	if (!ok || !(m = calloc(1, sizeof(*m))))
		return NULL;
	m->p = *p;
	m->interval_us = interval_us;
	m->slice_bytes = sizeof(struct rsig_slice) +
			 adwin_states(p) * sizeof(struct stream_adwin);
	if (table_rebuild(m, 16) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

void rsig_free(struct rsig_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_slices; i++)
		free(m->slices[i]);
	free(m->slices);
	free(m->table);
	free(m);
}

void rsig_set_interval(struct rsig_model *m, uint64_t interval_us)
{
	m->interval_us = interval_us;
}

const struct rsig_params *rsig_params(const struct rsig_model *m)
{
	return &m->p;
}

static struct rsig_slice *slice_add(struct rsig_model *m, const char *key)
{
	struct rsig_slice *sl, **grown;

	if (m->n_slices == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;

		if (!(grown = realloc(m->slices, cap * sizeof(*grown))))
			return NULL;
		m->slices = grown;
		m->cap = cap;
	}
	if ((m->n_slices + 1) * 2 > m->table_size &&
	    table_rebuild(m, m->table_size * 2) < 0)
		return NULL;
	if (!(sl = slice_new(m, key)))
		return NULL;
	m->slices[m->n_slices++] = sl;
	*table_slot(m->table, m->table_size, sl->key, sl->hash) = sl;
	return sl;
}

struct rsig_slice *rsig_slice(struct rsig_model *m, const char *key,
			      bool create)
{
	struct rsig_slice *sl = *table_slot(m->table, m->table_size, key,
					    hash_key(key));

	return sl || !create ? sl : slice_add(m, key);
}

void rsig_forget(struct rsig_model *m, const char *key)
{
	struct rsig_slice *sl = rsig_slice(m, key, false);
	size_t i;

	if (!sl || !strcmp(key, "*"))
		return;
	for (i = 0; m->slices[i] != sl; i++)
		;
	memmove(m->slices + i, m->slices + i + 1,
		(m->n_slices - i - 1) * sizeof(*m->slices));
	m->n_slices--;
	free(sl);
	/* Same size: only fails without memory, and then the table is
	 * rebuilt in place, since the old one holds the freed slice. */
	if (table_rebuild(m, m->table_size) < 0) {
		memset(m->table, 0, m->table_size * sizeof(*m->table));
		for (i = 0; i < m->n_slices; i++)
			*table_slot(m->table, m->table_size, m->slices[i]->key,
				    m->slices[i]->hash) = m->slices[i];
	}
}

void rsig_reset(struct rsig_model *m)
{
	for (size_t i = 0; i < m->n_slices; i++)
		slice_start(m, m->slices[i]);
}

size_t rsig_slice_count(const struct rsig_model *m)
{
	return m->n_slices;
}

size_t rsig_memory(const struct rsig_model *m)
{
	size_t bytes = sizeof(*m) + m->cap * sizeof(*m->slices) +
		       m->table_size * sizeof(*m->table);

	for (size_t i = 0; i < m->n_slices; i++)
		bytes += m->slice_bytes + strlen(m->slices[i]->key) + 1;
	return bytes;
}

/* ---- feeding ---- */

/* Marks A suppressed when the detector's previous recorded alarm on
 * this signal and slice is less than the interval ago. */
static void rate_limit(const struct rsig_model *m, struct watch *w,
		       struct rsig_alarm *a, int64_t now_us)
{
	int64_t *last = &w->last_alarm_us[a->detector];

	a->suppressed = *last && now_us - *last < (int64_t)m->interval_us;
	if (!a->suppressed)
		*last = now_us ? now_us : 1;
}

static void ph_alarm(const struct rsig_model *m, const struct watch *w,
		     struct rsig_alarm *a)
{
	const struct stream_ph_alarm *l = &w->ph.last;

	a->detector = RSIG_PH;
	a->seen = l->n;
	a->statistic = l->statistic;
	a->threshold = m->p.ph.threshold;
	a->up = l->dir == STREAM_UP;
	a->n_before = l->change_at;
	a->n_after = l->n - l->change_at;
	a->mean_before = l->mean_before;
	a->mean_after = l->mean_after;
}

static void adwin_alarm(struct watch *w, struct rsig_alarm *a)
{
	const struct stream_adwin_change *c = &w->adwin->last;

	a->detector = RSIG_ADWIN;
	a->seen = w->adwin_seen;
	a->statistic = fabs(c->mean_after - c->mean_before);
	a->threshold = (double)NAN;
	a->up = c->mean_after > c->mean_before;
	a->n_before = c->n_before;
	a->n_after = c->n_after;
	a->mean_before = c->mean_before;
	a->mean_after = c->mean_after;
	w->adwin_seen = 0;
}

size_t rsig_feed(struct rsig_model *m, struct rsig_slice *sl,
		 enum rsig_signal s, double x, int64_t now_us,
		 struct rsig_alarm *out)
{
	struct watch *w = &sl->w[s];
	size_t n = 0;

	if (!watches(&m->p, s) || !isfinite(x))
		return 0;
	if ((m->p.detectors & CONF_STREAM_PH) && stream_ph_update(&w->ph, x))
		ph_alarm(m, w, &out[n++]);
	if (w->adwin) {
		w->adwin_seen++;
		if (stream_adwin_update(w->adwin, x))
			adwin_alarm(w, &out[n++]);
	}
	for (size_t i = 0; i < n; i++) {
		out[i].signal = s;
		out[i].slice = sl->key;
		rate_limit(m, w, &out[i], now_us);
	}
	return n;
}

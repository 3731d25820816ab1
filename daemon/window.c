/* Reference and window buffers per slice.  Buffers are allocated at their
 * full capacity up front: large allocations are mapped lazily by the
 * kernel, so untouched capacity costs address space, not resident memory,
 * and the hot path never reallocates. */
#include "window.h"

#include "rng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Labeled (scores, label) pairs: a reservoir sample of those offered. */
struct cal_buf {
	float *scores;
	int64_t *labels;
	unsigned n;
	uint64_t seen;
};

struct win_slice {
	char *key;
	uint64_t hash;
	/* reference being collected, published as ref when first used */
	struct win_ref *ref_build;
	uint64_t ref_seen;	/* explicit reference records offered */
	bool ref_explicit;
	struct win_ref *ref;	/* frozen reference, NULL until first use */
	/* current window */
	float *cur, *cur_scores;
	double *cur_sums;	/* win_params.col_sums since the window opened */
	unsigned cur_n, cur_cap;
	int64_t cur_start_us, cur_end_us;
	struct cal_buf cal;
	int64_t last_window_id;
	int64_t last_seen_us;	/* arrival of its last record */
	struct rng rng;		/* reservoir sampling */
	struct win_slice_state state;
};

struct win_model {
	struct win_params p;
	char **slice_by;
	struct win_slice **slices;	/* insertion order; [0] is "*" */
	size_t n_slices;
	struct win_slice **table;	/* open addressing, power of two */
	size_t table_size;
	int64_t max_window_id;		/* highest id handed out or stored */
	float *spare[WIN_SPARES];	/* recycled window buffers */
	unsigned spare_cap[WIN_SPARES], n_spare;
	bool spare_taken;		/* since the last win_trim_spares */
};

/* Storage of ROWS rows of DIM values kept in F, in whole floats. */
static size_t row_floats(size_t rows, size_t dim, enum smp_format f)
{
	return (rows * dim * smp_width(f) + sizeof(float) - 1) / sizeof(float);
}

/* Row I of a buffer of DIM-wide rows kept in F. */
static void *row_at(float *base, size_t i, size_t dim, enum smp_format f)
{
	return (char *)base + i * dim * smp_width(f);
}

static const float *rows_f32(const float *data, size_t n, size_t dim,
			     enum smp_format f, float **owned)
{
	*owned = NULL;
	if (f == SMP_FLOAT32 || n == 0)
		return data;
	if (!(*owned = malloc(n * dim * sizeof(float))))
		return NULL;
	smp_load(f, *owned, data, n * dim);
	return *owned;
}

const float *win_ref_rows(const struct win_ref *r, float **owned)
{
	return rows_f32(r->data, r->n, r->dim, r->format, owned);
}

const float *win_closed_rows(const struct win_closed *c, float **owned)
{
	return rows_f32(c->data, c->n, c->dim, c->format, owned);
}

/* Rows of data, then scores and (aligned) labels when k > 0, in one
 * block. */
struct win_ref *win_ref_new(const char *slice, unsigned cap, unsigned dim,
			    unsigned k, enum smp_format format)
{
	size_t rows = row_floats(cap, dim, format);
	size_t floats = rows + (size_t)cap * k;
	size_t labels_at = (sizeof(struct win_ref) + floats * sizeof(float) +
			    sizeof(int64_t) - 1) & ~(sizeof(int64_t) - 1);
	struct win_ref *r = malloc(labels_at + (k ? (size_t)cap * sizeof(int64_t) : 0));

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	if (!(r->slice = strdup(slice))) {
		free(r);
		return NULL;
	}
	atomic_init(&r->refs, 1);
	r->dim = dim;
	r->k = k;
	r->format = format;
	if (k) {
		r->scores = r->data + rows;
		r->labels = (const int64_t *)(const void *)((const char *)r +
						     labels_at);
	}
	return r;
}

struct win_ref *win_ref_get(struct win_ref *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

void win_ref_put(struct win_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		free(r->slice);
		free(r);
	}
}

void win_closed_free(struct win_closed *c)
{
	if (!c)
		return;
	win_ref_put(c->ref);
	free(c->data);
	free(c->sums);
	free((void *)c->scores);
	free(c->cal_scores);
	free(c->cal_labels);
	free(c->slice);
	free(c);
}

void win_recycle(struct win_model *m, struct win_closed *c)
{
	if (!c)
		return;
	if (c->data && c->dim == m->p.dim && c->format == m->p.format &&
	    c->cap >= m->p.window_max && m->n_spare < WIN_SPARES) {
		m->spare_cap[m->n_spare] = c->cap;
		m->spare[m->n_spare++] = c->data;
		c->data = NULL;
	}
	win_closed_free(c);
}

/* BYTES on a cache line: rows of whole lines (d a multiple of 16 in
 * float32) then never share one, and streaming stores write whole lines
 * (5% faster copies at d = 768 than at malloc's 16-byte offset). */
static float *rows_alloc(size_t bytes)
{
	void *p;

	return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}

/* A buffer for a new window: a recycled one when there is one. */
static float *window_buffer(struct win_model *m, unsigned *cap)
{
	if (m->n_spare) {
		m->spare_taken = true;
		m->n_spare--;
		*cap = m->spare_cap[m->n_spare];
		return m->spare[m->n_spare];
	}
	*cap = m->p.window_max;
	return rows_alloc(row_floats(m->p.window_max, m->p.dim, m->p.format) *
			  sizeof(float));
}

static void drop_spares(struct win_model *m)
{
	while (m->n_spare)
		free(m->spare[--m->n_spare]);
}

void win_trim_spares(struct win_model *m)
{
	if (!m->spare_taken)
		drop_spares(m);
	m->spare_taken = false;
}

size_t win_spare_bytes(const struct win_model *m)
{
	size_t bytes = 0;

	for (unsigned i = 0; i < m->n_spare; i++)
		bytes += row_floats(m->spare_cap[i], m->p.dim, m->p.format) *
			 sizeof(float);
	return bytes;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int64_t now_unix_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t new_ref_id(void)
{
	uint64_t id;

	/* Random ids need no round trip to the database and stay unique
	 * across restarts and several daemons sharing one database. */
	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^
		     (uint64_t)clock();
	id &= INT64_MAX;
	return id ? (int64_t)id : 1;
}

static int append_char(char *buf, size_t len, size_t *pos, char ch)
{
	if (*pos + 1 >= len)
		return -1;
	buf[(*pos)++] = ch;
	return 0;
}

static int append_escaped(char *buf, size_t len, size_t *pos, const char *s)
{
	for (; *s; s++)
		if (((*s == ',' || *s == '=' || *s == '\\') &&
		     append_char(buf, len, pos, '\\') < 0) ||
		    append_char(buf, len, pos, *s) < 0)
			return -1;
	return 0;
}

int win_slice_key(const char *const *slice_by, size_t n_slice_by,
		  const struct record *r, char *buf, size_t len)
{
	size_t pos = 0, i, j;

	if (len < 1)
		return -1;
	for (i = 0; i < n_slice_by; i++) {
		const char *val = "";

		for (j = 0; j < r->n_labels; j++)
			if (!strcmp(r->labels[j].key, slice_by[i]))
				val = r->labels[j].value;
		if ((i > 0 && append_char(buf, len, &pos, ',') < 0) ||
		    append_escaped(buf, len, &pos, slice_by[i]) < 0 ||
		    append_char(buf, len, &pos, '=') < 0 ||
		    append_escaped(buf, len, &pos, val) < 0)
			return -1;
	}
	buf[pos] = '\0';
	return (int)pos;
}

int win_record_slice(const struct win_model *m, const struct record *r,
		     char *buf)
{
	if (!m->p.n_slice_by) {
		strcpy(buf, WIN_WHOLE_MODEL);
		return 0;
	}
	return win_slice_key(m->p.slice_by, m->p.n_slice_by, r, buf,
			     WIN_SLICE_KEY_MAX) < 0 ? -1 : 0;
}

/* Whether KEY is "*" or a key of M's slice_by, the names in order: a slice
 * restored from the database may come from a config with other slice_by. */
static bool key_fits(const struct win_model *m, const char *key)
{
	char name[WIN_SLICE_KEY_MAX];
	size_t i, len;

	if (!strcmp(key, WIN_WHOLE_MODEL))
		return true;
	for (i = 0; i < m->p.n_slice_by; i++) {
		len = 0;
		if (append_escaped(name, sizeof(name), &len, m->slice_by[i]) < 0 ||
		    strncmp(key, name, len) || key[len] != '=')
			return false;
		for (key += len + 1; *key && *key != ','; key++)
			if (*key == '\\' && !*++key)
				return false;
		if (i + 1 < m->p.n_slice_by && *key++ != ',')
			return false;
	}
	return m->p.n_slice_by && !*key;
}

static struct win_slice **table_slot(struct win_slice **table, size_t size,
				     const char *key, uint64_t h)
{
	size_t i = h & (size - 1);

	while (table[i] && (table[i]->hash != h || strcmp(table[i]->key, key)))
		i = (i + 1) & (size - 1);
	return &table[i];
}

/* Rebuilds the table at SIZE from the slice list (growth and removal). */
static int table_rebuild(struct win_model *m, size_t size)
{
	struct win_slice **t = calloc(size, sizeof(*t));
	size_t i;

	if (!t)
		return -1;
	for (i = 0; i < m->n_slices; i++)
		*table_slot(t, size, m->slices[i]->key, m->slices[i]->hash) =
			m->slices[i];
	free(m->table);
	m->table = t;
	m->table_size = size;
	return 0;
}

static struct win_slice *slice_find(const struct win_model *m, const char *key)
{
	return *table_slot(m->table, m->table_size, key, hash_str(key));
}

static void cal_free(struct cal_buf *b)
{
	free(b->scores);
	free(b->labels);
	memset(b, 0, sizeof(*b));
}

static void slice_free(struct win_slice *s)
{
	if (!s)
		return;
	free(s->key);
	win_ref_put(s->ref_build);
	win_ref_put(s->ref);
	free(s->cur);
	free(s->cur_scores);
	free(s->cur_sums);
	cal_free(&s->cal);
	free(s);
}

static struct win_ref *new_build(const struct win_model *m, const char *key)
{
	return win_ref_new(key, m->p.reference_size, m->p.dim, m->p.k,
			   m->p.format);
}

static struct win_slice *slice_add(struct win_model *m, const char *key)
{
	struct win_slice *s = calloc(1, sizeof(*s)), **grown;

	if (!s)
		return NULL;
	s->key = strdup(key);
	s->hash = hash_str(key);
	s->ref_build = new_build(m, key);
	s->last_window_id = m->max_window_id;
	rng_init(&s->rng, m->p.seed, s->hash);
	grown = realloc(m->slices, (m->n_slices + 1) * sizeof(*grown));
	/* Adopted at once: table_rebuild reads the slices through m->slices. */
	if (grown)
		m->slices = grown;
	if (!s->key || !s->ref_build || !grown ||
	    ((m->n_slices + 1) * 2 > m->table_size &&
	     table_rebuild(m, m->table_size * 2) < 0)) {
		slice_free(s);
		return NULL;
	}
	m->slices[m->n_slices++] = s;
	*table_slot(m->table, m->table_size, s->key, s->hash) = s;
	return s;
}

struct win_model *win_model_new(const struct win_params *p)
{
	struct win_model *m = NULL;
	size_t i;

	/* Tests need two reference rows; a window needs room for one. */
	if (p->reference_size < 2 || p->dim == 0 || p->window_max == 0 ||
	    !(m = calloc(1, sizeof(*m))))
		return NULL;
	m->p = *p;
	m->p.slice_by = NULL;
	m->slice_by = calloc(p->n_slice_by + 1, sizeof(char *));
	if (!m->slice_by || table_rebuild(m, 16) < 0)
		goto fail;
	for (i = 0; i < p->n_slice_by; i++)
		if (!(m->slice_by[i] = strdup(p->slice_by[i])))
			goto fail;
	m->p.slice_by = (const char *const *)m->slice_by;
	if (!slice_add(m, WIN_WHOLE_MODEL))
		goto fail;
	return m;
fail:
	win_model_free(m);
	return NULL;
}

static int grow_rows(float **buf, size_t floats)
{
	float *grown;

	if (!*buf || !floats)
		return 0;
	grown = realloc(*buf, floats * sizeof(float));
	if (!grown)
		return -ENOMEM;
	*buf = grown;
	return 0;
}

int win_model_update(struct win_model *m, const struct win_params *p)
{
	size_t i;

	/* Open windows were allocated for the old cap: grow them first. */
	if (p->window_max > m->p.window_max) {
		for (i = 0; i < m->n_slices; i++) {
			struct win_slice *s = m->slices[i];
			size_t rows = p->window_max > s->cur_n ? p->window_max :
								 s->cur_n;

			if (grow_rows(&s->cur, row_floats(rows, m->p.dim,
							  m->p.format)) < 0 ||
			    grow_rows(&s->cur_scores, rows * m->p.k) < 0)
				return -ENOMEM;
			if (s->cur)
				s->cur_cap = (unsigned)rows;
		}
		drop_spares(m);	/* too small now */
	}
	m->p.window_size = p->window_size;
	m->p.window_max = p->window_max;
	m->p.window_min = p->window_min;
	m->p.reference_min = p->reference_min;
	m->p.max_slices = p->max_slices;
	m->p.seed = p->seed;
	m->p.col_sums = p->col_sums;
	return 0;
}

void win_model_free(struct win_model *m)
{
	size_t i;

	if (!m)
		return;
	drop_spares(m);
	for (i = 0; i < m->n_slices; i++)
		slice_free(m->slices[i]);
	for (i = 0; m->slice_by && i < m->p.n_slice_by; i++)
		free(m->slice_by[i]);
	free(m->slice_by);
	free(m->slices);
	free(m->table);
	free(m);
}

static bool takes_reference(const struct win_slice *s)
{
	return s->ref == NULL;
}

static float *ref_scores(struct win_ref *b)
{
	return (float *)b->scores;
}

static int64_t *ref_labels(struct win_ref *b)
{
	return (int64_t *)b->labels;
}

/* Row J of the reference being built becomes the record R. */
static void set_ref_row(const struct win_model *m, struct win_ref *b,
			size_t j, const struct record *r)
{
	smp_store(b->format, row_at(b->data, j, b->dim, b->format),
		  r->embedding, b->dim);
	if (!m->p.k)
		return;
	memcpy(ref_scores(b) + j * m->p.k, r->scores, m->p.k * sizeof(float));
	ref_labels(b)[j] = r->has_label ? r->label : WIN_NO_LABEL;
}

/* Explicit reference records form a uniform reservoir sample of all the
 * reference records offered; they displace a bootstrapped reference that
 * no window has used yet. */
static void add_reference(struct win_model *m, struct win_slice *s,
			  const struct record *r)
{
	struct win_ref *b = s->ref_build;
	uint64_t j;

	if (!s->ref_explicit) {
		s->ref_explicit = true;
		b->n = 0;
	}
	s->ref_seen++;
	if (b->n < m->p.reference_size) {
		j = b->n++;
	} else {
		j = rng_below(&s->rng, s->ref_seen);
		if (j >= m->p.reference_size)
			return;
	}
	set_ref_row(m, b, j, r);
}

/* The reference freezes when the first window is tested against it; from
 * then on jobs share it read-only. */
static void freeze_reference(struct win_slice *s)
{
	s->ref = s->ref_build;
	s->ref_build = NULL;
	s->ref->id = new_ref_id();
	s->ref->created_us = now_unix_us();
	s->ref->explicit_records = s->ref_explicit;
}

static unsigned reference_min(const struct win_model *m)
{
	unsigned min = m->p.reference_min < 2 ? 2 : m->p.reference_min;

	return min < m->p.reference_size ? min : m->p.reference_size;
}

/* The reference a window of S is tested against: its own when it holds
 * reference_min rows, else the whole model's.  NULL when neither does.
 * Freezes the one chosen. */
static struct win_ref *pick_reference(struct win_model *m, struct win_slice *s,
				      struct win_closed *c)
{
	struct win_slice *whole = m->slices[0];
	unsigned min = reference_min(m);

	if ((s->ref ? s->ref : s->ref_build)->n < min) {
		if (s == whole ||
		    (whole->ref ? whole->ref : whole->ref_build)->n < min) {
			c->short_of = (s->ref ? s->ref : s->ref_build)->n;
			return NULL;
		}
		c->ref_fallback = true;
		s = whole;
	}
	c->ref_new = s->ref == NULL;
	if (c->ref_new)
		freeze_reference(s);
	return win_ref_get(s->ref);
}

static struct win_closed *close_window(struct win_model *m, struct win_slice *s)
{
	struct win_closed *c = calloc(1, sizeof(*c));

	if (!c || !(c->slice = strdup(s->key)))
		goto fail;
	c->slice_hash = s->hash;
	c->status = WIN_SHORT_WINDOW;
	c->short_of = s->cur_n;
	if (s->cur_n >= m->p.window_min)
		c->status = (c->ref = pick_reference(m, s, c)) ?
				    WIN_TESTED : WIN_SHORT_REFERENCE;
	c->window_id = ++s->last_window_id;
	if (c->window_id > m->max_window_id)
		m->max_window_id = c->window_id;
	c->start_us = s->cur_start_us;
	c->end_us = s->cur_end_us;
	c->n = s->cur_n;
	c->dim = m->p.dim;
	c->data = s->cur;
	c->format = m->p.format;
	c->cap = s->cur_cap;
	c->sums = s->cur_sums;
	c->scores = s->cur_scores;
	c->k = m->p.k;
	c->cal_scores = s->cal.scores;
	c->cal_labels = s->cal.labels;
	c->n_labeled = s->cal.n;
	c->labels_seen = s->cal.seen;
	memset(&s->cal, 0, sizeof(s->cal));
	s->cur = s->cur_scores = NULL;
	s->cur_sums = NULL;
	s->cur_n = 0;
	return c;
fail:
	free(c ? c->slice : NULL);
	free(c);
	return NULL;
}

static void push_closed(struct win_closed *c, struct win_closed **out)
{
	c->next = *out;
	*out = c;
}

/* Live records bootstrap the reference while it is short: up to
 * reference.size of them when no explicit reference was sent, and always
 * until it holds the two points a test needs. */
static bool live_goes_to_reference(const struct win_model *m,
				   const struct win_slice *s)
{
	if (!takes_reference(s))
		return false;
	return s->ref_build->n < 2 ||
	       (!s->ref_explicit && s->ref_build->n < m->p.reference_size);
}

static int open_window(struct win_model *m, struct win_slice *s)
{
	if (!s->cur && !(s->cur = window_buffer(m, &s->cur_cap)))
		return -ENOMEM;
	if (m->p.k && !s->cur_scores &&
	    !(s->cur_scores = malloc((size_t)m->p.window_max * m->p.k *
				     sizeof(float))))
		return -ENOMEM;
	if (s->cur_n == 0) {
		free(s->cur_sums);
		s->cur_sums = NULL;
		if (m->p.col_sums && !(s->cur_sums = calloc(m->p.dim,
							   sizeof(double))))
			return -ENOMEM;
	}
	return 0;
}

/* Room for a pair in the reservoir of B: the row to write, or -1 when the
 * sample keeps its rows. */
static long cal_slot(const struct win_model *m, struct win_slice *s,
		     struct cal_buf *b)
{
	size_t cap = m->p.window_max;
	uint64_t j;

	if (!b->scores) {
		b->scores = malloc(cap * m->p.k * sizeof(float));
		b->labels = malloc(cap * sizeof(int64_t));
		if (!b->scores || !b->labels) {
			cal_free(b);
			return -2;
		}
	}
	b->seen++;
	if (b->n < cap)
		return b->n++;
	j = rng_below(&s->rng, b->seen);
	return j < cap ? (long)j : -1;
}

static int add_pair(const struct win_model *m, struct win_slice *s,
		    const float *scores, int64_t label)
{
	long j = cal_slot(m, s, &s->cal);

	if (j == -2)
		return -ENOMEM;
	if (j >= 0) {
		memcpy(s->cal.scores + (size_t)j * m->p.k, scores,
		       m->p.k * sizeof(float));
		s->cal.labels[j] = label;
	}
	return 0;
}

static enum rec_err add_live(struct win_model *m, struct win_slice *s,
			     const struct record *r, int64_t ts,
			     struct win_closed **out)
{
	size_t dim = m->p.dim;
	struct win_closed *c;

	if (live_goes_to_reference(m, s)) {
		set_ref_row(m, s->ref_build, s->ref_build->n++, r);
		return REC_OK;
	}
	if (open_window(m, s) < 0)
		return REC_ERR_OVERSIZE;
	if (s->cur_n >= m->p.window_max) {
		/* Only after a reload shrank the cap: close what is there. */
		if (!(c = close_window(m, s)))
			return REC_ERR_OVERSIZE;
		push_closed(c, out);
		return add_live(m, s, r, ts, out);
	}
	if (m->p.k && r->has_label && add_pair(m, s, r->scores,
					       r->label) < 0)
		return REC_ERR_OVERSIZE;
	if (s->cur_n == 0)
		s->cur_start_us = s->cur_end_us = ts;
	smp_store_sum(m->p.format, row_at(s->cur, s->cur_n, dim, m->p.format),
		      r->embedding, dim, s->cur_sums);
	if (m->p.k)
		memcpy(s->cur_scores + (size_t)s->cur_n * m->p.k, r->scores,
		       m->p.k * sizeof(float));
	s->cur_n++;
	if (ts < s->cur_start_us)
		s->cur_start_us = ts;
	if (ts > s->cur_end_us)
		s->cur_end_us = ts;
	if ((m->p.window_size && s->cur_n >= m->p.window_size) ||
	    s->cur_n >= m->p.window_max) {
		if (!(c = close_window(m, s)))
			return REC_ERR_OVERSIZE;
		push_closed(c, out);
	}
	return REC_OK;
}

enum rec_err win_add(struct win_model *m, const struct record *r,
		     int64_t ts_us, int64_t now_us, struct win_closed **closed)
{
	struct win_slice *targets[2] = { m->slices[0], NULL };
	char key[WIN_SLICE_KEY_MAX];
	size_t n = 1, i;
	enum rec_err e = REC_OK;

	if (m->p.n_slice_by) {
		if (win_record_slice(m, r, key) < 0)
			return REC_ERR_BAD_FIELD;
		targets[1] = slice_find(m, key);
		if (!targets[1] && m->n_slices >= m->p.max_slices)
			return REC_ERR_TOO_MANY_SLICES;
		n = 2;
	}
	/* A slice about to be created takes reference records too. */
	if (r->role == REC_REFERENCE && !takes_reference(targets[0]) &&
	    (n == 1 || (targets[1] && !takes_reference(targets[1]))))
		return REC_ERR_REFERENCE_FROZEN;
	if (n == 2 && !targets[1] && !(targets[1] = slice_add(m, key)))
		return REC_ERR_OVERSIZE;
	for (i = 0; i < n && e == REC_OK; i++) {
		targets[i]->last_seen_us = now_us;
		if (r->role == REC_REFERENCE) {
			if (takes_reference(targets[i]))
				add_reference(m, targets[i], r);
		} else {
			e = add_live(m, targets[i], r, ts_us, closed);
		}
	}
	return e;
}

int win_add_labeled(struct win_model *m, const char *slice,
		    const float *scores, int64_t label)
{
	struct win_slice *s = slice_find(m, slice);

	if (!s || !m->p.k)
		return -ENOENT;
	if (add_pair(m, s, scores, label) < 0 ||
	    (s != m->slices[0] && add_pair(m, m->slices[0], scores, label) < 0))
		return -ENOMEM;
	return 0;
}

size_t win_close_due(struct win_model *m, struct win_closed **closed)
{
	size_t i, count = 0;
	struct win_closed *c;

	for (i = 0; i < m->n_slices; i++) {
		struct win_slice *s = m->slices[i];

		if (s->cur_n == 0)
			continue;
		if (!(c = close_window(m, s)))
			continue;	/* out of memory: retried next tick */
		push_closed(c, closed);
		count++;
	}
	return count;
}

size_t win_expire(struct win_model *m, int64_t now_us, uint64_t idle_us,
		  struct win_closed **closed,
		  void (*expired)(void *arg, const char *slice,
				  const struct win_ref *ref),
		  void *arg)
{
	size_t i, kept = 1, gone = 0;
	struct win_closed *c;

	for (i = 1; i < m->n_slices; i++) {
		struct win_slice *s = m->slices[i];

		/* A slice restored at start has had no record yet: it is
		 * idle from the first sweep that sees it. */
		if (!s->last_seen_us)
			s->last_seen_us = now_us;
		if (now_us - s->last_seen_us < (int64_t)idle_us) {
			m->slices[kept++] = s;
			continue;
		}
		if (s->cur_n && (c = close_window(m, s)))
			push_closed(c, closed);
		if (expired)
			expired(arg, s->key, s->ref);
		slice_free(s);
		gone++;
	}
	m->n_slices = kept;
	/* Rebuilding at the same size cannot fail for lack of room; on
	 * allocation failure the old table would hold freed slices, so
	 * rebuild in place instead. */
	if (gone && table_rebuild(m, m->table_size) < 0) {
		memset(m->table, 0, m->table_size * sizeof(*m->table));
		for (i = 0; i < m->n_slices; i++)
			*table_slot(m->table, m->table_size, m->slices[i]->key,
				    m->slices[i]->hash) = m->slices[i];
	}
	return gone;
}

int win_reset(struct win_model *m, size_t *dropped)
{
	struct win_ref **fresh = calloc(m->n_slices, sizeof(*fresh));
	size_t i;

	/* Every slice needs an empty build buffer: allocate them all before
	 * changing anything, so a failure leaves the model as it was. */
	for (i = 0; fresh && i < m->n_slices; i++)
		if (m->slices[i]->ref && !(fresh[i] = new_build(m, m->slices[i]->key)))
			break;
	if (!fresh || i < m->n_slices) {
		while (fresh && i--)
			win_ref_put(fresh[i]);
		free(fresh);
		return -ENOMEM;
	}
	*dropped = 0;
	for (i = 0; i < m->n_slices; i++) {
		struct win_slice *s = m->slices[i];

		if (s->ref) {
			win_ref_put(s->ref);
			win_ref_put(s->ref_build);
			s->ref = NULL;
			s->ref_build = fresh[i];
		}
		s->ref_build->n = 0;
		s->ref_explicit = false;
		s->ref_seen = 0;
		*dropped += s->cur_n;
		s->cur_n = 0;
		cal_free(&s->cal);
		memset(&s->state, 0, sizeof(s->state));
	}
	free(fresh);
	return 0;
}

int win_install_reference(struct win_model *m, struct win_ref *ref)
{
	struct win_slice *s = slice_find(m, ref->slice);

	if (!s && !key_fits(m, ref->slice)) {
		win_ref_put(ref);
		return -EINVAL;
	}
	if (!s && m->n_slices >= m->p.max_slices) {
		win_ref_put(ref);
		return -ENOSPC;
	}
	if (!s && !(s = slice_add(m, ref->slice))) {
		win_ref_put(ref);
		return -ENOMEM;
	}
	if (!takes_reference(s)) {
		win_ref_put(ref);
		return -EBUSY;
	}
	win_ref_put(s->ref_build);
	s->ref_build = NULL;
	s->ref_explicit = false;
	s->ref = ref;
	return 0;
}

void win_resume(struct win_model *m, int64_t max_id)
{
	size_t i;

	if (max_id > m->max_window_id)
		m->max_window_id = max_id;
	for (i = 0; i < m->n_slices; i++)
		if (m->slices[i]->last_window_id < max_id)
			m->slices[i]->last_window_id = max_id;
}

int64_t win_max_window_id(const struct win_model *m)
{
	return m->max_window_id;
}

unsigned win_push_decision(struct win_slice_state *ss, bool drifted,
			   unsigned alarm_m)
{
	uint64_t keep = alarm_m >= 64 ? UINT64_MAX :
			(UINT64_C(1) << alarm_m) - 1;

	ss->recent = (ss->recent << 1 | drifted) & keep;
	return (unsigned)__builtin_popcountll(ss->recent);
}

int win_restore_decisions(struct win_model *m, const char *slice,
			  uint64_t recent)
{
	struct win_slice *s = slice_find(m, slice);

	if (!s && !key_fits(m, slice))
		return -EINVAL;
	if (!s && m->n_slices >= m->p.max_slices)
		return -ENOSPC;
	if (!s && !(s = slice_add(m, slice)))
		return -ENOMEM;
	s->state.recent = recent;
	return 0;
}

struct win_slice_state *win_state(struct win_model *m, const char *slice)
{
	struct win_slice *s = slice_find(m, slice);

	return s ? &s->state : NULL;
}

size_t win_slice_count(const struct win_model *m)
{
	return m->n_slices;
}

size_t win_memory(const struct win_model *m)
{
	size_t i, bytes = 0, pair = (m->p.k ? m->p.k * sizeof(float) +
						sizeof(int64_t) : 0);

	for (i = 0; i < m->n_slices; i++) {
		const struct win_slice *s = m->slices[i];
		const struct win_ref *r = s->ref ? s->ref : s->ref_build;

		if (r)
			bytes += r->n * (r->dim * smp_width(r->format) + pair);
		bytes += s->cur_n * (m->p.dim * smp_width(m->p.format) +
				     m->p.k * sizeof(float));
		if (s->cur_sums)
			bytes += m->p.dim * sizeof(double);
		bytes += s->cal.n * pair;
	}
	return bytes;
}

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

/* A window's row buffer.  The slice whose window fills it holds one
 * reference, a closed window holds one until it is recycled, and the "*"
 * window of a sliced model holds one while any of its rows point into it.
 * Rows once written are never rewritten while another holds the buffer:
 * a filler that starts over lets go of a shared buffer instead.  Counted
 * on the loop thread only (closed windows come back to it to be let go). */
struct win_buf {
	unsigned refs;
	unsigned cap;		/* rows */
	unsigned used;		/* rows written */
	uint64_t pinned_in;	/* the "*" window that pinned it last */
	float *data;		/* cap rows, on a cache line */
};

struct win_slice {
	char *key;
	uint64_t hash;
	/* reference being collected, published as ref when first used */
	struct win_ref *ref_build;
	uint64_t ref_seen;	/* explicit reference records offered */
	bool ref_explicit;
	struct win_ref *ref;	/* frozen reference, NULL until first use */
	/* current window: cur_n records, their rows in buf from row 0 */
	struct win_buf *buf;
	float *cur_scores;
	double *cur_sums;	/* win_params.col_sums since the window opened */
	unsigned cur_n;
	int64_t cur_start_us, cur_end_us;
	/* "*" of a sliced model (points): row i of the window is at rows[i]
	 * in one of the pins; buf holds only the rows of records that their
	 * slice took as reference, buf_n of them, kept across windows. */
	bool points;
	const void **rows;
	struct win_buf **pins;
	unsigned n_pins, pins_cap, buf_n;
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
	uint64_t whole_window;		/* counts "*"'s windows, for pinned_in */
	struct win_buf *spare[WIN_SPARES];	/* recycled window buffers */
	unsigned n_spare;
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

/* The rows of a "*" window, copied together from where they are. */
static const float *gather(const struct win_closed *c, float **owned)
{
	size_t floats = (size_t)c->n * c->dim;

	if (!(*owned = malloc((floats ? floats : 1) * sizeof(float))))
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		smp_load(c->format, *owned + i * c->dim, c->rows[i], c->dim);
	return *owned;
}

const float *win_closed_rows(const struct win_closed *c, float **owned)
{
	*owned = NULL;
	if (c->projected)
		return c->projected;
	if (c->rows)
		return gather(c, owned);
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

/* BYTES on a cache line: rows of whole lines (d a multiple of 16 in
 * float32) then never share one, and streaming stores write whole lines
 * (5% faster copies at d = 768 than at malloc's 16-byte offset). */
static float *rows_alloc(size_t bytes)
{
	void *p;

	return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}

static void buf_free(struct win_buf *b)
{
	if (b) {
		free(b->data);
		free(b);
	}
}

/* A buffer of CAP rows of M, one reference held; NULL when out of
 * memory. */
static struct win_buf *buf_new(const struct win_model *m, unsigned cap)
{
	struct win_buf *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	if (!(b->data = rows_alloc(row_floats(cap, m->p.dim, m->p.format) *
				   sizeof(float)))) {
		free(b);
		return NULL;
	}
	b->refs = 1;
	b->cap = cap;
	return b;
}

/* Lets go of B (NULL is fine); the last one out keeps it as a spare of M
 * when M is given and it is big enough, else frees it. */
static void buf_put(struct win_model *m, struct win_buf *b)
{
	if (!b || --b->refs)
		return;
	if (m && b->cap >= m->p.window_max && m->n_spare < WIN_SPARES)
		m->spare[m->n_spare++] = b;
	else
		buf_free(b);
}

/* A buffer for a new window: a recycled one when there is one. */
static struct win_buf *window_buffer(struct win_model *m)
{
	struct win_buf *b;

	if (!m->n_spare)
		return buf_new(m, m->p.window_max);
	m->spare_taken = true;
	b = m->spare[--m->n_spare];
	b->refs = 1;
	b->used = 0;
	b->pinned_in = 0;
	return b;
}

static void let_go(struct win_model *m, struct win_closed *c)
{
	buf_put(m, c->buf);
	for (unsigned i = 0; i < c->n_pins; i++)
		buf_put(m, c->pins[i]);
	c->buf = NULL;
	c->n_pins = 0;
}

void win_closed_free(struct win_closed *c)
{
	if (!c)
		return;
	let_go(NULL, c);
	win_ref_put(c->ref);
	free(c->rows);
	free(c->pins);
	free(c->projected);
	free(c->sums);
	free((void *)c->scores);
	free(c->cal_scores);
	free(c->cal_labels);
	free(c->slice);
	free(c);
}

void win_recycle(struct win_model *m, struct win_closed *c)
{
	if (c)
		let_go(m, c);
	win_closed_free(c);
}

static void drop_spares(struct win_model *m)
{
	while (m->n_spare)
		buf_free(m->spare[--m->n_spare]);
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
		bytes += row_floats(m->spare[i]->cap, m->p.dim, m->p.format) *
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

/* "*"'s window lets go of the buffers its rows are in. */
static void unpin(struct win_model *m, struct win_slice *s)
{
	while (s->n_pins)
		buf_put(m, s->pins[--s->n_pins]);
	if (m && s->points)
		m->whole_window++;	/* pin afresh */
}

/* Frees S; its buffers go to M's spares when M is given. */
static void slice_free(struct win_model *m, struct win_slice *s)
{
	if (!s)
		return;
	free(s->key);
	win_ref_put(s->ref_build);
	win_ref_put(s->ref);
	unpin(m, s);
	free(s->pins);
	free(s->rows);
	buf_put(m, s->buf);
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
		slice_free(NULL, s);
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
	m->whole_window = 1;
	if (!slice_add(m, WIN_WHOLE_MODEL))
		goto fail;
	/* Every record of a sliced model is stored by its slice: "*" points
	 * at the rows instead of storing each a second time (the second
	 * copy was a third of the loop's time at d = 768). */
	m->slices[0]->points = p->n_slice_by > 0;
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

/* Room for CAP labeled pairs in B: the reservoir fills up to the cap. */
static int grow_pairs(struct cal_buf *b, size_t cap, unsigned k)
{
	int64_t *labels;

	if (!b->scores)
		return 0;
	if (grow_rows(&b->scores, cap * k) < 0 ||
	    !(labels = realloc(b->labels, cap * sizeof(*labels))))
		return -ENOMEM;
	b->labels = labels;
	return 0;
}

/* Room for ROWS records in S's open window.  A new buffer, not realloc:
 * "*" and closed windows may still read the rows where they are. */
static int grow_window(struct win_model *m, struct win_slice *s, size_t rows)
{
	struct win_buf *b;
	const void **grown;

	if (s->points) {
		if (!s->rows)
			return 0;
		if (!(grown = realloc(s->rows, rows * sizeof(*grown))))
			return -ENOMEM;
		s->rows = grown;
		return 0;
	}
	if (!s->buf)
		return 0;
	if (!(b = buf_new(m, (unsigned)rows)))
		return -ENOMEM;
	memcpy(b->data, s->buf->data, row_floats(s->cur_n, m->p.dim,
						 m->p.format) * sizeof(float));
	b->used = s->cur_n;
	buf_put(m, s->buf);
	s->buf = b;
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

			if (grow_window(m, s, rows) < 0 ||
			    grow_rows(&s->cur_scores, rows * m->p.k) < 0 ||
			    grow_pairs(&s->cal, p->window_max, m->p.k) < 0)
				return -ENOMEM;
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
	for (i = 0; i < m->n_slices; i++)
		slice_free(NULL, m->slices[i]);
	drop_spares(m);
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

/* The rows of S's window go to C: "*"'s row pointers and pins, or a
 * slice's buffer. */
static void hand_over_rows(struct win_model *m, struct win_slice *s,
			   struct win_closed *c)
{
	if (s->points) {
		c->rows = s->rows;
		c->pins = s->pins;
		c->n_pins = s->n_pins;
		s->rows = NULL;
		s->pins = NULL;
		s->n_pins = s->pins_cap = 0;
		m->whole_window++;
		/* Its own buffer goes back once no window reads rows in it:
		 * slices rarely warm up once traffic is steady. */
		if (s->buf && s->buf->refs == 1) {
			buf_put(m, s->buf);
			s->buf = NULL;
		}
	} else {
		c->buf = s->buf;
		c->data = s->buf ? s->buf->data : NULL;
		s->buf = NULL;
	}
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
	c->format = m->p.format;
	hand_over_rows(m, s, c);
	c->sums = s->cur_sums;
	c->scores = s->cur_scores;
	c->k = m->p.k;
	c->cal_scores = s->cal.scores;
	c->cal_labels = s->cal.labels;
	c->n_labeled = s->cal.n;
	c->labels_seen = s->cal.seen;
	memset(&s->cal, 0, sizeof(s->cal));
	s->cur_scores = NULL;
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
	if (s->points ? !s->rows && !(s->rows = malloc(m->p.window_max *
						       sizeof(*s->rows))) :
			!s->buf && !(s->buf = window_buffer(m)))
		return -ENOMEM;
	if (m->p.k && !s->cur_scores &&
	    !(s->cur_scores = malloc((size_t)m->p.window_max * m->p.k *
				     sizeof(float))))
		return -ENOMEM;
	/* Closing hands the sums over: a window without them is new. */
	if (s->cur_n == 0 && !s->cur_sums && m->p.col_sums &&
	    !(s->cur_sums = calloc(m->p.dim, sizeof(double))))
		return -ENOMEM;
	return 0;
}

/* S's window open with room for one more record: one already at
 * window_max (a reload shrank the cap) closes first. */
static enum rec_err window_room(struct win_model *m, struct win_slice *s,
				struct win_closed **out)
{
	struct win_closed *c;

	if (open_window(m, s) < 0)
		return REC_ERR_OVERSIZE;
	if (s->cur_n < m->p.window_max)
		return REC_OK;
	if (!(c = close_window(m, s)))
		return REC_ERR_OVERSIZE;
	push_closed(c, out);
	return open_window(m, s) < 0 ? REC_ERR_OVERSIZE : REC_OK;
}

/* Room for a pair in the reservoir of B: the row to write, or -1 when the
 * sample keeps its rows. */
/* B's arrays, allocated at its first pair. */
static int cal_alloc(const struct win_model *m, struct cal_buf *b)
{
	size_t cap = m->p.window_max;

	if (b->scores)
		return 0;
	b->scores = malloc(cap * m->p.k * sizeof(float));
	b->labels = malloc(cap * sizeof(int64_t));
	if (!b->scores || !b->labels) {
		cal_free(b);
		return -ENOMEM;
	}
	return 0;
}

static long cal_slot(const struct win_model *m, struct win_slice *s,
		     struct cal_buf *b)
{
	size_t cap = m->p.window_max;
	uint64_t j;

	if (cal_alloc(m, b) < 0)
		return -2;
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

/* Where a record's row was stored: in buffer buf at row; row NULL when
 * no window stored it.  summed: it went into "*"'s sums as it was. */
struct stored {
	struct win_buf *buf;
	const void *row;
	bool summed;
};

/* Room for one more pin in "*" S's window. */
static int pin_room(struct win_slice *s)
{
	unsigned cap = s->pins_cap ? 2 * s->pins_cap : 8;
	struct win_buf **grown;

	if (s->n_pins < s->pins_cap)
		return 0;
	if (!(grown = realloc(s->pins, cap * sizeof(*grown))))
		return -ENOMEM;
	s->pins = grown;
	s->pins_cap = cap;
	return 0;
}

/* Room for a row in "*" S's own buffer: a fresh one when it is full. */
static int own_room(struct win_model *m, struct win_slice *s)
{
	if (s->buf && s->buf_n >= s->buf->cap) {
		buf_put(m, s->buf);
		s->buf = NULL;
	}
	if (!s->buf) {
		if (!(s->buf = window_buffer(m)))
			return -ENOMEM;
		s->buf_n = 0;
	}
	return 0;
}

/* R into "*" S's own buffer, with S's sums; *AT says where. */
static int store_own(struct win_model *m, struct win_slice *s,
		     const struct record *r, struct stored *at)
{
	if (own_room(m, s) < 0)
		return -ENOMEM;
	at->buf = s->buf;
	at->row = row_at(s->buf->data, s->buf_n++, m->p.dim, m->p.format);
	s->buf->used = s->buf_n;
	smp_store_sum(m->p.format, (void *)at->row, r->embedding, m->p.dim,
		      s->cur_sums, NULL);
	at->summed = true;
	return 0;
}

/* Adds a stored ROW to SUMS: the values and order smp_store_sum adds. */
static void add_stored(const struct win_model *m, double *sums,
		       const void *row)
{
	size_t w = smp_width(m->p.format);
	float v[256];

	for (size_t i = 0; i < m->p.dim; i += 256) {
		size_t n = m->p.dim - i < 256 ? m->p.dim - i : 256;

		smp_load(m->p.format, v, (const char *)row + i * w, n);
		for (size_t j = 0; j < n; j++)
			sums[i + j] += (double)v[j];
	}
}

/* Row cur_n of "*" S's window is the record R where its slice stored it
 * (AT), or, when the slice took R as reference, a row of S's own buffer;
 * either way S's window holds that buffer.  A row its slice stored
 * before "*" took records into windows (its reference froze on the way)
 * joins S's sums here.  Nothing changes on failure. */
static int point_at(struct win_model *m, struct win_slice *s,
		    const struct record *r, struct stored *at)
{
	if (pin_room(s) < 0 || (!at->row && store_own(m, s, r, at) < 0))
		return -ENOMEM;
	if (!at->summed && s->cur_sums)
		add_stored(m, s->cur_sums, at->row);
	if (at->buf->pinned_in != m->whole_window) {
		at->buf->refs++;
		at->buf->pinned_in = m->whole_window;
		s->pins[s->n_pins++] = at->buf;
	}
	s->rows[s->cur_n] = at->row;
	return 0;
}

/* Stores R in S's window, and adds it to ALSO ("*"'s column sums) when
 * not NULL; sets *AT to where it went.  "*" of a sliced model points at
 * *AT instead. */
static int store_row(struct win_model *m, struct win_slice *s,
		     const struct record *r, double *also, struct stored *at)
{
	void *row;

	if (s->points)
		return point_at(m, s, r, at);
	row = row_at(s->buf->data, s->cur_n, m->p.dim, m->p.format);
	smp_store_sum(m->p.format, row, r->embedding, m->p.dim, s->cur_sums,
		      also);
	s->buf->used = s->cur_n + 1;
	at->buf = s->buf;
	at->row = row;
	at->summed = also != NULL;
	return 0;
}

static enum rec_err add_live(struct win_model *m, struct win_slice *s,
			     const struct record *r, int64_t ts, double *also,
			     struct stored *at, struct win_closed **out)
{
	struct win_closed *c;
	enum rec_err e;

	if (live_goes_to_reference(m, s)) {
		set_ref_row(m, s->ref_build, s->ref_build->n++, r);
		return REC_OK;
	}
	if ((e = window_room(m, s, out)) != REC_OK)
		return e;
	if (m->p.k && r->has_label && add_pair(m, s, r->scores,
					       r->label) < 0)
		return REC_ERR_OVERSIZE;
	if (store_row(m, s, r, also, at) < 0)
		return REC_ERR_OVERSIZE;
	if (s->cur_n == 0)
		s->cur_start_us = s->cur_end_us = ts;
	if (m->p.k)
		memcpy(s->cur_scores + (size_t)s->cur_n * m->p.k, r->scores,
		       m->p.k * sizeof(float));
	s->cur_n++;
	if (ts < s->cur_start_us)
		s->cur_start_us = ts;
	if (ts > s->cur_end_us)
		s->cur_end_us = ts;
	/* Out of memory for the closed window: the record is in, and the
	 * window closes with the next record or tick instead. */
	if (((m->p.window_size && s->cur_n >= m->p.window_size) ||
	     s->cur_n >= m->p.window_max) && (c = close_window(m, s)))
		push_closed(c, out);
	return REC_OK;
}

/* A live record of a sliced model: its slice S stores the row, adding it
 * to "*"'s sums as well, and then "*" points at it. */
static enum rec_err add_live_sliced(struct win_model *m, struct win_slice *s,
				    const struct record *r, int64_t ts,
				    struct win_closed **out)
{
	struct win_slice *whole = m->slices[0];
	struct stored at = { 0 };
	double *also = NULL;
	enum rec_err e;

	/* What "*" needs is taken first: once the slice stored the row, the
	 * rest cannot fail for lack of memory (unless "*"'s reference froze
	 * on the way and its first window opens now). */
	if (!live_goes_to_reference(m, whole)) {
		if ((e = window_room(m, whole, out)) != REC_OK)
			return e;
		if (pin_room(whole) < 0 ||
		    (m->p.k && r->has_label && cal_alloc(m, &whole->cal) < 0) ||
		    (live_goes_to_reference(m, s) && own_room(m, whole) < 0))
			return REC_ERR_OVERSIZE;
		also = whole->cur_sums;
	}
	if ((e = add_live(m, s, r, ts, also, &at, out)) != REC_OK)
		return e;
	return add_live(m, whole, r, ts, NULL, &at, out);
}

enum rec_err win_add(struct win_model *m, const struct record *r,
		     int64_t ts_us, int64_t now_us, struct win_closed **closed)
{
	struct win_slice *targets[2] = { m->slices[0], NULL };
	char key[WIN_SLICE_KEY_MAX];
	struct stored at = { 0 };
	size_t n = 1, i;

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
	for (i = 0; i < n; i++)
		targets[i]->last_seen_us = now_us;
	if (r->role != REC_REFERENCE)
		return n == 2 ? add_live_sliced(m, targets[1], r, ts_us, closed) :
				add_live(m, targets[0], r, ts_us, NULL, &at,
					 closed);
	for (i = 0; i < n; i++)
		if (takes_reference(targets[i]))
			add_reference(m, targets[i], r);
	return REC_OK;
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
		slice_free(m, s);
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

/* S's open window starts over.  Its buffer is written from row 0 again
 * only when nothing else reads rows in it ("*"'s windows, closed ones). */
static void empty_window(struct win_model *m, struct win_slice *s)
{
	unpin(m, s);
	s->cur_n = s->buf_n = 0;
	free(s->cur_sums);
	s->cur_sums = NULL;
	if (s->buf && s->buf->refs > 1) {
		buf_put(m, s->buf);
		s->buf = NULL;
	}
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
		empty_window(m, s);
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

/* "*" of a sliced model: a pointer per row, and the rows of the buffers
 * no one but its window holds: its own, and its slices' windows that were
 * recycled or expired while it pointed into them. */
static size_t pointed_bytes(const struct win_model *m,
			    const struct win_slice *s)
{
	size_t bytes = s->cur_n * sizeof(*s->rows);

	for (unsigned i = 0; i < s->n_pins; i++)
		if (s->pins[i]->refs == 1 || s->pins[i] == s->buf)
			bytes += (size_t)s->pins[i]->used * m->p.dim *
				 smp_width(m->p.format);
	return bytes;
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
		bytes += s->points ? pointed_bytes(m, s) :
				     s->cur_n * m->p.dim * smp_width(m->p.format);
		bytes += s->cur_n * m->p.k * sizeof(float);
		if (s->cur_sums)
			bytes += m->p.dim * sizeof(double);
		bytes += s->cal.n * pair;
	}
	return bytes;
}

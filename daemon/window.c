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

struct win_slice {
	char *key;
	uint64_t hash;
	/* reference being collected, published as ref when first used */
	struct win_ref *ref_build;
	uint64_t ref_seen;	/* explicit reference records offered */
	bool ref_explicit;
	struct win_ref *ref;	/* frozen reference, NULL until first use */
	/* current window */
	float *cur;
	unsigned cur_n, cur_cap;
	int64_t cur_start_us, cur_end_us;
	int64_t last_window_id;
	struct rng rng;		/* reservoir sampling */
};

struct win_model {
	struct win_params p;
	char **slice_by;
	struct win_slice **slices;	/* insertion order; [0] is "*" */
	size_t n_slices;
	struct win_slice **table;	/* open addressing, power of two */
	size_t table_size;
	float *spare[WIN_SPARES];	/* recycled window buffers */
	unsigned spare_cap[WIN_SPARES], n_spare;
};

struct win_ref *win_ref_get(struct win_ref *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

void win_ref_put(struct win_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1)
		free(r);
}

void win_closed_free(struct win_closed *c)
{
	if (!c)
		return;
	win_ref_put(c->ref);
	free(c->data);
	free(c->slice);
	free(c);
}

void win_recycle(struct win_model *m, struct win_closed *c)
{
	if (!c)
		return;
	if (c->data && c->dim == m->p.dim && c->cap >= m->p.window_max &&
	    m->n_spare < WIN_SPARES) {
		m->spare_cap[m->n_spare] = c->cap;
		m->spare[m->n_spare++] = c->data;
		c->data = NULL;
	}
	win_closed_free(c);
}

/* A buffer for a new window: a recycled one when there is one. */
static float *window_buffer(struct win_model *m, unsigned *cap)
{
	if (m->n_spare) {
		m->n_spare--;
		*cap = m->spare_cap[m->n_spare];
		return m->spare[m->n_spare];
	}
	*cap = m->p.window_max;
	return malloc((size_t)m->p.window_max * m->p.dim * sizeof(float));
}

static void drop_spares(struct win_model *m)
{
	while (m->n_spare)
		free(m->spare[--m->n_spare]);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
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

static struct win_slice **table_slot(struct win_slice **table, size_t size,
				     const char *key, uint64_t h)
{
	size_t i = h & (size - 1);

	while (table[i] && (table[i]->hash != h || strcmp(table[i]->key, key)))
		i = (i + 1) & (size - 1);
	return &table[i];
}

static int table_grow(struct win_model *m)
{
	size_t size = m->table_size ? m->table_size * 2 : 16, i;
	struct win_slice **t = calloc(size, sizeof(*t));

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

static void slice_free(struct win_slice *s)
{
	if (!s)
		return;
	free(s->key);
	free(s->ref_build);
	win_ref_put(s->ref);
	free(s->cur);
	free(s);
}

static struct win_slice *slice_add(struct win_model *m, const char *key)
{
	struct win_slice *s = calloc(1, sizeof(*s)), **grown;

	if (!s)
		return NULL;
	s->key = strdup(key);
	s->hash = hash_str(key);
	s->ref_build = malloc(sizeof(struct win_ref) +
			      (size_t)m->p.reference_size * m->p.dim *
				      sizeof(float));
	if (s->ref_build) {
		atomic_init(&s->ref_build->refs, 1);
		s->ref_build->n = 0;
		s->ref_build->dim = m->p.dim;
	}
	rng_init(&s->rng, m->p.seed, s->hash);
	grown = realloc(m->slices, (m->n_slices + 1) * sizeof(*grown));
	/* Adopted at once: table_grow reads the slices through m->slices. */
	if (grown)
		m->slices = grown;
	if (!s->key || !s->ref_build || !grown ||
	    ((m->n_slices + 1) * 2 > m->table_size && table_grow(m) < 0)) {
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
	if (!m->slice_by || table_grow(m) < 0)
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

int win_model_update(struct win_model *m, const struct win_params *p)
{
	size_t i;

	/* Open windows were allocated for the old cap: grow them first. */
	if (p->window_max > m->p.window_max) {
		for (i = 0; i < m->n_slices; i++) {
			struct win_slice *s = m->slices[i];
			size_t rows = p->window_max > s->cur_n ? p->window_max :
								 s->cur_n;
			float *grown;

			if (!s->cur)
				continue;
			grown = realloc(s->cur, rows * m->p.dim * sizeof(float));
			if (!grown)
				return -ENOMEM;
			s->cur = grown;
			s->cur_cap = (unsigned)rows;
		}
		drop_spares(m);	/* too small now */
	}
	m->p.window_size = p->window_size;
	m->p.window_max = p->window_max;
	m->p.window_min = p->window_min;
	m->p.max_slices = p->max_slices;
	m->p.seed = p->seed;
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

/* Explicit reference records form a uniform reservoir sample of all the
 * reference records offered; they displace a bootstrapped reference that
 * no window has used yet. */
static void add_reference(struct win_model *m, struct win_slice *s,
			  const float *x)
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
	memcpy(b->data + j * b->dim, x, b->dim * sizeof(float));
}

/* The reference freezes when the first window is tested against it; from
 * then on jobs share it read-only. */
static void freeze_reference(struct win_slice *s)
{
	s->ref = s->ref_build;
	s->ref_build = NULL;
	s->ref->id = new_ref_id();
}

static struct win_closed *close_window(struct win_model *m, struct win_slice *s)
{
	struct win_closed *c = calloc(1, sizeof(*c));

	if (!c || !(c->slice = strdup(s->key)))
		goto fail;
	c->slice_hash = s->hash;
	c->ref_new = s->ref == NULL;
	if (c->ref_new)
		freeze_reference(s);
	c->ref = win_ref_get(s->ref);
	c->window_id = ++s->last_window_id;
	c->start_us = s->cur_start_us;
	c->end_us = s->cur_end_us;
	c->n = s->cur_n;
	c->dim = m->p.dim;
	c->data = s->cur;
	c->cap = s->cur_cap;
	s->cur = NULL;
	s->cur_n = 0;
	return c;
fail:
	free(c ? c->slice : NULL);
	free(c);
	return NULL;
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

static enum rec_err add_live(struct win_model *m, struct win_slice *s,
			     const float *x, int64_t ts, struct win_closed **out)
{
	size_t dim = m->p.dim;
	struct win_closed *c;

	if (live_goes_to_reference(m, s)) {
		struct win_ref *b = s->ref_build;

		memcpy(b->data + (size_t)b->n++ * dim, x, dim * sizeof(float));
		return REC_OK;
	}
	if (!s->cur && !(s->cur = window_buffer(m, &s->cur_cap)))
		return REC_ERR_OVERSIZE;
	if (s->cur_n == 0)
		s->cur_start_us = s->cur_end_us = ts;
	if (s->cur_n >= m->p.window_max) {
		/* Only after a reload shrank the cap: close what is there. */
		if (!(c = close_window(m, s)))
			return REC_ERR_OVERSIZE;
		c->next = *out;
		*out = c;
		return add_live(m, s, x, ts, out);
	}
	memcpy(s->cur + (size_t)s->cur_n++ * dim, x, dim * sizeof(float));
	if (ts < s->cur_start_us)
		s->cur_start_us = ts;
	if (ts > s->cur_end_us)
		s->cur_end_us = ts;
	if ((m->p.window_size && s->cur_n >= m->p.window_size) ||
	    s->cur_n >= m->p.window_max) {
		if (!(c = close_window(m, s)))
			return REC_ERR_OVERSIZE;
		c->next = *out;
		*out = c;
	}
	return REC_OK;
}

enum rec_err win_add(struct win_model *m, const struct record *r,
		     int64_t ts_us, struct win_closed **closed)
{
	struct win_slice *targets[2] = { m->slices[0], NULL };
	char key[WIN_SLICE_KEY_MAX];
	size_t n = 1, i;
	enum rec_err e = REC_OK;

	if (m->p.n_slice_by) {
		if (win_slice_key(m->p.slice_by, m->p.n_slice_by, r, key,
				  sizeof(key)) < 0)
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
		if (r->role == REC_REFERENCE) {
			if (takes_reference(targets[i]))
				add_reference(m, targets[i], r->embedding);
		} else {
			e = add_live(m, targets[i], r->embedding, ts_us, closed);
		}
	}
	return e;
}

size_t win_close_due(struct win_model *m, struct win_closed **closed)
{
	size_t i, count = 0;
	struct win_closed *c;

	for (i = 0; i < m->n_slices; i++) {
		struct win_slice *s = m->slices[i];

		if (s->cur_n < m->p.window_min || s->cur_n < 2)
			continue;
		if (!(c = close_window(m, s)))
			continue;	/* out of memory: retried next tick */
		c->next = *closed;
		*closed = c;
		count++;
	}
	return count;
}

void win_resume(struct win_model *m, const char *slice, int64_t max_id)
{
	struct win_slice *s = slice_find(m, slice);

	if (!s && m->n_slices < m->p.max_slices)
		s = slice_add(m, slice);
	if (s && max_id > s->last_window_id)
		s->last_window_id = max_id;
}

size_t win_slice_count(const struct win_model *m)
{
	return m->n_slices;
}

size_t win_memory(const struct win_model *m)
{
	size_t i, rows = 0;

	for (i = 0; i < m->n_slices; i++) {
		const struct win_slice *s = m->slices[i];

		rows += s->ref ? s->ref->n : s->ref_build->n;
		rows += s->cur_n;
	}
	return rows * m->p.dim * sizeof(float);
}

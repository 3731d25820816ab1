/* K-of-M decisions per slice, gathered at start (see history.h). */
#include "history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct slice_hist {
	char *model, *slice;
	uint64_t hash;
	int64_t newest_id;
	size_t n;
	bool drifted[STORE_HISTORY_MAX];
	unsigned alarm_m[STORE_HISTORY_MAX];
};

struct hist {
	struct slice_hist **all;	/* first appearance order */
	size_t n, cap;
	struct slice_hist **table;	/* open addressing, power of two */
	size_t table_size;
	struct store_history *list;
};

/* FNV-1a over "model\0slice". */
static uint64_t hash_of(const char *model, const char *slice)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *p = model;; p++) {
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
		if (!*p)
			break;
	}
	for (const char *p = slice; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

static struct slice_hist **slot(struct slice_hist **table, size_t size,
				const char *model, const char *slice, uint64_t h)
{
	size_t i = h & (size - 1);

	while (table[i] && (table[i]->hash != h || strcmp(table[i]->model, model) ||
			    strcmp(table[i]->slice, slice)))
		i = (i + 1) & (size - 1);
	return &table[i];
}

static int grow(struct hist *h)
{
	size_t size = h->table_size ? h->table_size * 2 : 64;
	struct slice_hist **table = calloc(size, sizeof(*table));
	struct slice_hist **all = realloc(h->all, size / 2 * sizeof(*all));

	if (all)
		h->all = all;
	if (!table || !all) {
		free(table);
		return -ENOMEM;
	}
	for (size_t i = 0; i < h->n; i++)
		*slot(table, size, h->all[i]->model, h->all[i]->slice,
		      h->all[i]->hash) = h->all[i];
	free(h->table);
	h->table = table;
	h->table_size = size;
	h->cap = size / 2;
	return 0;
}

struct hist *hist_new(void)
{
	struct hist *h = calloc(1, sizeof(*h));

	if (h && grow(h) < 0) {
		hist_free(h);
		return NULL;
	}
	return h;
}

static struct slice_hist *find(const struct hist *h, const char *model,
			       const char *slice)
{
	return *slot(h->table, h->table_size, model, slice, hash_of(model, slice));
}

static struct slice_hist *add_slice(struct hist *h, const char *model,
				    const char *slice)
{
	struct slice_hist *s;

	if (h->n == h->cap && grow(h) < 0)
		return NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->model = strdup(model);
	s->slice = strdup(slice);
	s->hash = hash_of(model, slice);
	s->newest_id = INT64_MIN;
	if (!s->model || !s->slice) {
		free(s->model);
		free(s->slice);
		free(s);
		return NULL;
	}
	h->all[h->n++] = s;
	*slot(h->table, h->table_size, model, slice, s->hash) = s;
	return s;
}

int hist_add(struct hist *h, const char *model, const char *slice,
	     int64_t window_id, bool drifted, unsigned alarm_m)
{
	struct slice_hist *s = find(h, model, slice);

	if (!s && !(s = add_slice(h, model, slice)))
		return -ENOMEM;
	if (window_id <= s->newest_id)
		return 0;
	s->newest_id = window_id;
	if (s->n == STORE_HISTORY_MAX) {
		memmove(s->drifted, s->drifted + 1, (s->n - 1) * sizeof(*s->drifted));
		memmove(s->alarm_m, s->alarm_m + 1, (s->n - 1) * sizeof(*s->alarm_m));
		s->n--;
	}
	s->drifted[s->n] = drifted;
	s->alarm_m[s->n++] = alarm_m;
	return 0;
}

void hist_forget(struct hist *h, const char *model, const char *slice)
{
	struct slice_hist *s;

	if (slice) {
		if ((s = find(h, model, slice)))
			s->n = 0;
		return;
	}
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->all[i]->model, model))
			h->all[i]->n = 0;
}

int hist_list(struct hist *h, const struct store_history **out, size_t *n)
{
	size_t k = 0;

	free(h->list);
	h->list = h->n ? malloc(h->n * sizeof(*h->list)) : NULL;
	if (h->n && !h->list)
		return -ENOMEM;
	for (size_t i = 0; i < h->n; i++) {
		const struct slice_hist *s = h->all[i];

		if (s->n)
			h->list[k++] = (struct store_history){
				.model = s->model, .slice = s->slice, .n = s->n,
				.drifted = s->drifted, .alarm_m = s->alarm_m,
			};
	}
	*out = h->list;
	*n = k;
	return 0;
}

void hist_free(struct hist *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->all[i]->model);
		free(h->all[i]->slice);
		free(h->all[i]);
	}
	free(h->all);
	free(h->table);
	free(h->list);
	free(h);
}

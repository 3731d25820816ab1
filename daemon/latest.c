/* Latest result per slice: a sorted array, updated once per closed window. */
#include "latest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lat {
	struct lat_slice **slices;
	size_t n, cap, drifted;
};

struct lat *lat_new(void)
{
	return calloc(1, sizeof(struct lat));
}

static void free_tests(struct lat_test *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].name);
	free(t);
}

/* Index of KEY, or where it would go (*found false). */
static size_t find(const struct lat *l, const char *key, bool *found)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->slices[mid]->key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct lat_test *copy_tests(const struct store_window *w, bool *drifted)
{
	struct lat_test *t = calloc(w->n_tests ? w->n_tests : 1, sizeof(*t));

	*drifted = false;
	for (size_t i = 0; t && i < w->n_tests; i++) {
		const struct store_test *s = &w->tests[i];

		t[i] = (struct lat_test){ .statistic = s->statistic,
					  .p_value = s->p_value,
					  .threshold = s->threshold,
					  .drifted = s->drifted };
		*drifted |= s->drifted;
		if (!(t[i].name = strdup(s->test))) {
			free_tests(t, i);
			return NULL;
		}
	}
	return t;
}

static struct lat_slice *insert(struct lat *l, size_t at, const char *key)
{
	struct lat_slice *s;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct lat_slice **grown = realloc(l->slices, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		l->slices = grown;
		l->cap = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->key = strdup(key))) {
		free(s);
		return NULL;
	}
	s->window_id = INT64_MIN;
	memmove(&l->slices[at + 1], &l->slices[at],
		(l->n - at) * sizeof(*l->slices));
	l->slices[at] = s;
	l->n++;
	return s;
}

int lat_put(struct lat *l, const struct store_window *w)
{
	bool found, drifted;
	size_t at = find(l, w->slice, &found);
	struct lat_slice *s = found ? l->slices[at] : NULL;
	struct lat_test *t;

	if (s && s->window_id >= w->window_id)
		return 0;
	if (!(t = copy_tests(w, &drifted)))
		return -ENOMEM;
	if (!s && !(s = insert(l, at, w->slice))) {
		free_tests(t, w->n_tests);
		return -ENOMEM;
	}
	l->drifted += (size_t)drifted - (size_t)s->drifted;
	free_tests(s->tests, s->n_tests);
	s->tests = t;
	s->n_tests = w->n_tests;
	s->window_id = w->window_id;
	s->end_us = w->end_us;
	s->n = w->n;
	s->drifted = drifted;
	return 0;
}

size_t lat_count(const struct lat *l)
{
	return l->n;
}

size_t lat_drifted(const struct lat *l)
{
	return l->drifted;
}

const struct lat_slice *lat_get(const struct lat *l, size_t i)
{
	return l->slices[i];
}

void lat_free(struct lat *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free_tests(l->slices[i]->tests, l->slices[i]->n_tests);
		free(l->slices[i]->key);
		free(l->slices[i]);
	}
	free(l->slices);
	free(l);
}

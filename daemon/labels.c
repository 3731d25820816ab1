/* Waiting records: a chained hash on the id, plus a list in arrival order
 * (which is expiry order while labels.ttl stays put; after a reload
 * changes it, expiry catches up within one ttl). */
#include "labels.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *hnext;		/* same bucket */
	struct entry *prev, *next;	/* arrival order */
	uint64_t hash;
	int64_t expires_us;
	char *slice;			/* into the same block */
	float *scores;			/* into the same block */
	char id[];
};

struct lbl {
	unsigned k;
	struct entry **buckets;
	size_t n_buckets, count;
	struct entry *oldest, *newest;
};

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

struct lbl *lbl_new(unsigned k)
{
	struct lbl *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->k = k ? k : 1;
	l->n_buckets = 64;
	if (!(l->buckets = calloc(l->n_buckets, sizeof(*l->buckets)))) {
		free(l);
		return NULL;
	}
	return l;
}

static struct entry **find(struct lbl *l, const char *id, uint64_t h)
{
	struct entry **pp = &l->buckets[h & (l->n_buckets - 1)];

	while (*pp && ((*pp)->hash != h || strcmp((*pp)->id, id)))
		pp = &(*pp)->hnext;
	return pp;
}

/* Unlinks the entry at *PP (a bucket link) and frees it. */
static void remove_at(struct lbl *l, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		l->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->newest = e->prev;
	l->count--;
	free(e);
}

/* E is in the map, so the walk to the link that points at it ends. */
static void remove_entry(struct lbl *l, struct entry *e)
{
	struct entry **pp = &l->buckets[e->hash & (l->n_buckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	remove_at(l, pp);
}

static void grow(struct lbl *l)
{
	size_t n = l->n_buckets * 2;
	struct entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;	/* longer chains, still correct */
	for (size_t i = 0; i < l->n_buckets; i++) {
		struct entry *e = l->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(l->buckets);
	l->buckets = b;
	l->n_buckets = n;
}

int lbl_put(struct lbl *l, const char *id, const char *slice,
	    const float *scores, int64_t expires_us, size_t max,
	    size_t *evicted)
{
	uint64_t h = hash_id(id);
	size_t id_len = strlen(id) + 1, slice_len = strlen(slice) + 1;
	struct entry **pp = find(l, id, h), *e;

	*evicted = 0;
	if (*pp)
		remove_at(l, pp);
	while (l->count >= max && l->oldest) {
		remove_entry(l, l->oldest);
		++*evicted;
	}
	if (max == 0)
		return 0;
	/* Scores first after the header for their alignment. */
	e = malloc(sizeof(*e) + id_len + slice_len + l->k * sizeof(float) +
		   sizeof(float));
	if (!e)
		return -ENOMEM;
	e->hash = h;
	e->expires_us = expires_us;
	memcpy(e->id, id, id_len);
	e->slice = e->id + id_len;
	memcpy(e->slice, slice, slice_len);
	e->scores = (float *)(((uintptr_t)(e->slice + slice_len) +
			       sizeof(float) - 1) & ~(uintptr_t)(sizeof(float) - 1));
	memcpy(e->scores, scores, l->k * sizeof(float));
	e->next = NULL;
	e->prev = l->newest;
	if (l->newest)
		l->newest->next = e;
	else
		l->oldest = e;
	l->newest = e;
	pp = find(l, id, h);
	e->hnext = NULL;
	*pp = e;
	if (++l->count > l->n_buckets)
		grow(l);
	return 0;
}

int lbl_take(struct lbl *l, const char *id, float *scores, char *slice,
	     size_t len)
{
	struct entry **pp = find(l, id, hash_id(id));

	if (!*pp)
		return -ENOENT;
	memcpy(scores, (*pp)->scores, l->k * sizeof(float));
	if (len) {
		strncpy(slice, (*pp)->slice, len - 1);
		slice[len - 1] = '\0';
	}
	remove_at(l, pp);
	return 0;
}

size_t lbl_expire(struct lbl *l, int64_t now_us)
{
	size_t n = 0;

	while (l->oldest && l->oldest->expires_us <= now_us) {
		remove_entry(l, l->oldest);
		n++;
	}
	return n;
}

size_t lbl_count(const struct lbl *l)
{
	return l->count;
}

void lbl_free(struct lbl *l)
{
	if (!l)
		return;
	while (l->oldest)
		remove_entry(l, l->oldest);
	free(l->buckets);
	free(l);
}

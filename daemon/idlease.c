/* The lease file: one "MODEL<TAB>LEASE" line per model. */
#include "idlease.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_NAME "window_ids"
#define NAME_MAX_LEN 64

struct lease {
	char model[NAME_MAX_LEN + 1];
	int64_t lease;
};

struct ids {
	char *path, *tmp;
	struct lease *v;
	size_t n, cap;
};

static struct lease *find(const struct ids *t, const char *model)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].model, model))
			return &t->v[i];
	return NULL;
}

static struct lease *find_or_add(struct ids *t, const char *model)
{
	struct lease *l = find(t, model);

	if (l || strlen(model) > NAME_MAX_LEN)
		return l;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct lease *grown = realloc(t->v, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		t->v = grown;
		t->cap = cap;
	}
	l = &t->v[t->n++];
	strcpy(l->model, model);
	l->lease = 0;
	return l;
}

static int load(struct ids *t, FILE *f, char *msg, size_t msglen)
{
	char line[NAME_MAX_LEN + 32], model[NAME_MAX_LEN + 1];
	long long lease;
	unsigned no = 0;
	struct lease *l;

	while (fgets(line, sizeof(line), f)) {
		no++;
		if (sscanf(line, "%64[^\t]\t%lld", model, &lease) != 2 || lease < 0) {
			snprintf(msg, msglen, "%s:%u: not MODEL<TAB>ID", t->path, no);
			return -EINVAL;
		}
		if (!(l = find_or_add(t, model)))
			return -ENOMEM;
		l->lease = lease;
	}
	return ferror(f) ? -EIO : 0;
}

int ids_open(const char *state_dir, struct ids **out, bool *existed,
	     char *msg, size_t msglen)
{
	struct ids *t = calloc(1, sizeof(*t));
	FILE *f;
	int err = 0;

	if (!t || asprintf(&t->path, "%s/" FILE_NAME, state_dir) < 0 ||
	    asprintf(&t->tmp, "%s/" FILE_NAME ".tmp", state_dir) < 0) {
		if (t)
			t->path = t->tmp = NULL;
		ids_free(t);
		return -ENOMEM;
	}
	*existed = false;
	if ((f = fopen(t->path, "re"))) {
		*existed = true;
		err = load(t, f, msg, msglen);
		fclose(f);
	} else if (errno != ENOENT) {
		err = -errno;
		snprintf(msg, msglen, "%s: %s", t->path, strerror(errno));
	}
	if (err) {
		ids_free(t);
		return err;
	}
	*out = t;
	return 0;
}

void ids_free(struct ids *t)
{
	if (!t)
		return;
	free(t->path);
	free(t->tmp);
	free(t->v);
	free(t);
}

int64_t ids_lease(const struct ids *t, const char *model)
{
	const struct lease *l = find(t, model);

	return l ? l->lease : 0;
}

int ids_save(struct ids *t)
{
	int fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int err = 0;

	if (!f) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	for (size_t i = 0; i < t->n; i++)
		fprintf(f, "%s\t%" PRId64 "\n", t->v[i].model, t->v[i].lease);
	if (fflush(f) != 0 || fsync(fd) < 0)
		err = -errno;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(t->tmp, t->path) < 0)
		err = -errno;
	return err;
}

int ids_cover(struct ids *t, const char *model, int64_t id)
{
	struct lease *l = find_or_add(t, model);

	if (!l)
		return -ENOMEM;
	if (id < l->lease && l->lease > 0)
		return 0;
	l->lease = id + IDS_BLOCK;
	return ids_save(t);
}

int ids_set_exact(struct ids *t, const char *model, int64_t max_id)
{
	struct lease *l = find_or_add(t, model);

	if (!l)
		return -ENOMEM;
	l->lease = max_id + 1;
	return 0;
}

/* Line splitting and the label-only rule for HTTP ingest bodies. */
#include "body.h"

#include <stdio.h>
#include <string.h>

#include "ndjson.h"

#define MSG_LEN 256

/* A label line names a record and its class, nothing more. */
static enum rec_err label_only(const struct record *r, char *msg,
			       size_t msglen)
{
	if (r->embedding || r->scores || r->n_labels || r->has_ts ||
	    r->role != REC_LIVE) {
		snprintf(msg, msglen, "a label line holds only model, id and "
			 "label");
		return REC_ERR_BAD_FIELD;
	}
	if (!r->id) {
		snprintf(msg, msglen, "a label needs the id of its record");
		return REC_ERR_BAD_FIELD;
	}
	if (!r->has_label) {
		snprintf(msg, msglen, "label is required");
		return REC_ERR_BAD_FIELD;
	}
	return REC_OK;
}

static enum rec_err one_line(struct ndj_parser *p, const char *line,
			     size_t len, size_t max_line, bool labels,
			     struct record *r, char *msg)
{
	enum rec_err e;

	memset(r, 0, sizeof(*r));
	if (len > max_line) {
		snprintf(msg, MSG_LEN, "line longer than max_line (%zu bytes)",
			 max_line);
		return REC_ERR_OVERSIZE;
	}
	e = ndj_parse(p, line, len, r, msg, MSG_LEN);
	if (e == REC_OK && labels)
		e = label_only(r, msg, MSG_LEN);
	return e;
}

struct bdy_counts bdy_each(struct ndj_parser *p, const char *body,
			   size_t len, size_t max_line, bool labels,
			   bdy_fn fn, void *arg)
{
	struct bdy_counts n = { 0, 0, 0 };
	const char *line = body, *end = body + len, *nl;
	char msg[MSG_LEN];
	struct record r;
	enum rec_err e;
	size_t ll;

	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		ll = (size_t)((nl ? nl : end) - line);
		n.lines++;
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (ll) {
			e = one_line(p, line, ll, max_line, labels, &r, msg);
			e = fn(arg, n.lines, e, &r, r.id, msg, sizeof(msg));
			if (e == REC_OK)
				n.accepted++;
			else
				n.rejected++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return n;
}

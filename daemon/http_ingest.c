/* HTTP ingest: authentication, backpressure answer, body to the router,
 * JSON summary back. */
#include "http_ingest.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "body.h"
#include "engine.h"
#include "http.h"
#include "stats.h"

/* Error entries in one answer; the counts always cover every line. */
#define MAX_ERRORS 1000

struct answer {
	const struct hti_ctx *ctx;
	int64_t now_us;
	json_object *errors;
	uint64_t omitted;
};

static void send_json(struct evhttp_request *req, int code, json_object *o)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN, &len);

	if (b) {
		evbuffer_add(b, s, len);
		evbuffer_add(b, "\n", 1);
	}
	http_reply(req, code, "application/json", b);
	if (b)
		evbuffer_free(b);
	json_object_put(o);
}

static void send_refusal(struct evhttp_request *req, int code,
			 const char *error, const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(error));
	json_object_object_add(o, "message", json_object_new_string(msg));
	send_json(req, code, o);
}

static bool authorized(struct evhttp_request *req, const char *token)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
					   "Authorization");
	size_t want = strlen(token);

	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	return strlen(h) == want && CRYPTO_memcmp(h, token, want) == 0;
}

static enum rec_err on_line(void *arg, uint64_t line, enum rec_err err,
			    const struct record *rec, const char *id,
			    char *msg, size_t msglen)
{
	struct answer *a = arg;
	json_object *o;

	if (err == REC_OK)
		err = eng_ingest(a->ctx->eng, rec, a->now_us, msg, msglen);
	if (err == REC_OK) {
		st.records_accepted++;
		return REC_OK;
	}
	st.records_rejected[err]++;
	if (json_object_array_length(a->errors) >= MAX_ERRORS) {
		a->omitted++;
		return err;
	}
	o = json_object_new_object();
	json_object_object_add(o, "line", json_object_new_int64((int64_t)line));
	if (id)
		json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "error",
			       json_object_new_string(rec_err_name(err)));
	json_object_object_add(o, "message", json_object_new_string(msg));
	json_object_array_add(a->errors, o);
	return err;
}

static int64_t now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void hti_handle(struct evhttp_request *req, const struct hti_ctx *ctx,
		bool labels)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct answer a = { ctx, now_us(), NULL, 0 };
	struct bdy_counts n;
	size_t len = evbuffer_get_length(in);
	json_object *o;

	st.http_ingest_requests++;
	if (ctx->token && !authorized(req, ctx->token)) {
		st.http_ingest_refused[ST_HTTP_AUTH]++;
		st.auth_failures++;
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "WWW-Authenticate", "Bearer");
		send_refusal(req, 401, "auth",
			     "send Authorization: Bearer TOKEN with the "
			     "configured token");
		return;
	}
	if (ctx->pressure > 0) {
		st.http_ingest_refused[ST_HTTP_OVERLOADED]++;
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Retry-After", "1");
		send_refusal(req, 503, "overloaded",
			     "the detectors or the database are behind; "
			     "retry later");
		return;
	}
	a.errors = json_object_new_array();
	n = bdy_each(ctx->parser, (const char *)evbuffer_pullup(in, -1), len,
		     ctx->max_line, labels, on_line, &a);
	o = json_object_new_object();
	json_object_object_add(o, "accepted",
			       json_object_new_int64((int64_t)n.accepted));
	json_object_object_add(o, "rejected",
			       json_object_new_int64((int64_t)n.rejected));
	json_object_object_add(o, "errors", a.errors);
	if (a.omitted)
		json_object_object_add(o, "errors_omitted",
				       json_object_new_int64((int64_t)a.omitted));
	send_json(req, 200, o);
}

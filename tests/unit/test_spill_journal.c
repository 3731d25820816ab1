/* Unit tests for store/journal (segments, order, reopening, damage, the
 * bound, the lock, scanning) and for the journal form of store requests. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "request.h"

static char dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/driftd-jnl-XXXXXX");
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/journal");
	return 0;
}

static int teardown(void **state)
{
	char *slash = strrchr(dir, '/');

	*slash = '\0';
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static struct jnl *open_ok(uint64_t max)
{
	struct jnl *j = NULL;
	char msg[256];

	if (jnl_open(dir, max, 1, &j, msg, sizeof(msg)) < 0)
		fail_msg("jnl_open: %s", msg);
	return j;
}

/* Record I: its number then I bytes of a pattern, so lengths vary. */
static size_t make(unsigned i, unsigned char *buf)
{
	size_t len = 4 + i % 700;

	memcpy(buf, &i, 4);
	for (size_t k = 4; k < len; k++)
		buf[k] = (unsigned char)(i * 31 + k);
	return len;
}

static void expect_next(struct jnl *j, unsigned i)
{
	unsigned char want[1024], *got;
	size_t len, wlen = make(i, want);

	assert_int_equal(jnl_peek(j, &got, &len), 0);
	assert_int_equal(len, wlen);
	if (memcmp(got, want, len))
		fail_msg("record %u differs", i);
	free(got);
	jnl_consume(j);
}

static unsigned count_files(const char *ext)
{
	char cmd[256];
	unsigned n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '\\.%s$'", dir, ext);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (fscanf(p, "%u", &n) != 1)
		n = 0;
	pclose(p);
	return n;
}

/* Records come back in order across many segments; segments go as soon as
 * they are read; an empty journal has no segment left. */
static void test_order_across_segments(void **state)
{
	struct jnl *j = open_ok(UINT64_C(1) << 20);	/* 128 KiB segments */
	unsigned char buf[1024];
	unsigned i, n = 1000;

	for (i = 0; i < n; i++)
		assert_int_equal(jnl_append(j, buf, make(i, buf)), 0);
	assert_int_equal(jnl_records(j), n);
	assert_true(count_files("jnl") > 2);
	for (i = 0; i < n / 2; i++)
		expect_next(j, i);
	/* Appending while reading keeps the order. */
	for (i = n; i < n + 100; i++)
		assert_int_equal(jnl_append(j, buf, make(i, buf)), 0);
	for (i = n / 2; i < n + 100; i++)
		expect_next(j, i);
	assert_int_equal(jnl_records(j), 0);
	assert_int_equal(jnl_peek(j, &(unsigned char *){ NULL }, &(size_t){ 0 }),
			 -ENOENT);
	assert_int_equal(jnl_bytes(j), 0);
	assert_int_equal(count_files("jnl"), 0);
	jnl_close(j);
}

/* What was appended is there after a reopen (a crash), unread first;
 * what was consumed before is not. */
static void test_reopen(void **state)
{
	struct jnl *j = open_ok(UINT64_C(1) << 20);
	unsigned char buf[1024];
	unsigned i;

	for (i = 0; i < 300; i++)
		assert_int_equal(jnl_append(j, buf, make(i, buf)), 0);
	for (i = 0; i < 10; i++)
		expect_next(j, i);
	jnl_close(j);
	j = open_ok(UINT64_C(1) << 20);
	/* Segments fully read are gone; the rest of the first one comes
	 * again (at-least-once: its writes are idempotent). */
	assert_true(jnl_records(j) >= 290);
	assert_int_equal(jnl_discarded(j), 0);
	for (i = 300 - (unsigned)jnl_records(j); i < 300; i++)
		expect_next(j, i);
	jnl_close(j);
}

/* A record cut short by a crash ends its segment: the good records before
 * it stay, the damage is counted, appends go on after it. */
static void test_torn_tail_is_cut(void **state)
{
	struct jnl *j = open_ok(UINT64_C(1) << 20);
	unsigned char buf[1024];
	char path[128];
	struct stat sb;
	int fd;

	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(jnl_append(j, buf, make(i, buf)), 0);
	jnl_close(j);
	snprintf(path, sizeof(path), "%s/%016x.jnl", dir, 1);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(truncate(path, sb.st_size - 3), 0);
	j = open_ok(UINT64_C(1) << 20);
	assert_int_equal(jnl_records(j), 4);
	assert_int_equal(jnl_discarded(j), 1);
	assert_int_equal(jnl_append(j, buf, make(77, buf)), 0);
	for (unsigned i = 0; i < 4; i++)
		expect_next(j, i);
	expect_next(j, 77);
	jnl_close(j);

	/* A flipped byte fails the checksum the same way. */
	j = open_ok(UINT64_C(1) << 20);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(jnl_append(j, buf, make(i, buf)), 0);
	jnl_close(j);
	/* Numbering starts over once the journal was empty. */
	snprintf(path, sizeof(path), "%s/%016x.jnl", dir, 1);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 12 + (8 + 4) + 8 + 2), 1);
	close(fd);
	j = open_ok(UINT64_C(1) << 20);
	assert_int_equal(jnl_records(j), 1);
	assert_int_equal(jnl_discarded(j), 1);
	expect_next(j, 0);
	jnl_close(j);
}

/* The bound holds; -ENOSPC leaves the journal as it was. */
static void test_bound(void **state)
{
	struct jnl *j = open_ok(UINT64_C(256) << 10);
	unsigned char buf[1024];
	unsigned i;
	int rc = 0;

	for (i = 0; i < 10000 && rc == 0; i++)
		rc = jnl_append(j, buf, make(699, buf));
	assert_int_equal(rc, -ENOSPC);
	assert_true(jnl_bytes(j) <= UINT64_C(256) << 10);
	assert_true(jnl_bytes(j) > UINT64_C(200) << 10);
	assert_int_equal(jnl_records(j), i - 1);
	assert_int_equal(jnl_append(j, buf, 0), -EINVAL);
	/* Reading frees room again. */
	for (unsigned k = 0; k < 50; k++) {
		unsigned char *got;
		size_t len;

		assert_int_equal(jnl_peek(j, &got, &len), 0);
		free(got);
		jnl_consume(j);
	}
	assert_int_equal(jnl_append(j, buf, make(1, buf)), 0);
	jnl_close(j);
}

/* Another process cannot open the journal while one holds it; a journal
 * of another format is set aside. */
static void test_lock_and_format(void **state)
{
	struct jnl *j = open_ok(UINT64_C(1) << 20), *k = NULL;
	unsigned char buf[1024];
	char msg[256];
	pid_t pid;
	int status;

	assert_int_equal(jnl_append(j, buf, make(5, buf)), 0);
	pid = fork();
	if (pid == 0)
		_exit(jnl_open(dir, UINT64_C(1) << 20, 1, &k, msg, sizeof(msg)) ==
		      -EBUSY ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	jnl_close(j);

	assert_int_equal(jnl_open(dir, UINT64_C(1) << 20, 2, &k, msg,
				  sizeof(msg)), 0);
	assert_int_equal(jnl_records(k), 0);
	assert_int_equal(jnl_discarded(k), 1);
	assert_int_equal(count_files("stale"), 1);
	jnl_close(k);
}

/* Every request kind survives its journal form byte for byte; bytes that
 * are not a request are refused. */
static void test_request_roundtrip(void **state)
{
	static const float data[] = { 1.5f, -2.0f, 0.0f, 3.25f };
	static const struct store_test tests[] = {
		{ .test = "mmd", .statistic = 0.5, .p_value = 0.01, .threshold = 0.02,
		  .drifted = true, .effect = 0.5, .bandwidth = 2, .permutations = 9,
		  .effect_floor = 0.1 },
	};
	struct store_decision d = { .drifted = true, .alpha = 0.01,
				    .correction = "bh", .family_size = 3,
				    .alarm_k = 1, .alarm_m = 1,
				    .evaluated_us = 1700000000000000 };
	struct store_window w = { .model = "m", .slice = "*", .window_id = 4,
				  .start_us = 1, .end_us = 2, .n = 10,
				  .reference_set_id = 9, .seed = 3, .tests = tests,
				  .n_tests = 1, .decision = &d };
	struct store_reference r = { .model = "m", .slice = "a=1", .id = 5,
				     .created_us = 7, .n = 2, .dim = 2,
				     .data = data, .persist = STORE_PERSIST_RAW };
	struct req *in[3], *out;
	unsigned char *buf;
	size_t len;

	assert_int_equal(req_new_window(&w, &in[0]), 0);
	assert_int_equal(req_new_reference(&r, &in[1]), 0);
	assert_int_equal(req_new_retire("m", NULL, 5, "reset", &in[2]), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(req_encode(in[i], &buf, &len), 0);
		assert_int_equal(req_decode(buf, len, &out), 0);
		assert_int_equal(out->kind, in[i]->kind);
		assert_int_equal(out->nparams, in[i]->nparams);
		for (int p = 0; p < out->nparams; p++) {
			assert_int_equal(out->formats[p], in[i]->formats[p]);
			if (!in[i]->values[p]) {
				assert_null(out->values[p]);
				continue;
			}
			if (in[i]->formats[p]) {
				assert_int_equal(out->lengths[p], in[i]->lengths[p]);
				assert_memory_equal(out->values[p], in[i]->values[p],
						    (size_t)out->lengths[p]);
			} else {
				assert_string_equal(out->values[p], in[i]->values[p]);
			}
		}
		/* Cut short or with a byte too many: refused. */
		assert_int_equal(req_decode(buf, len - 1, &out), -EINVAL);
		buf[1] ^= 1;
		assert_int_equal(req_decode(buf, len, &out), -EINVAL);
		free(buf);
		req_free(out);
		req_free(in[i]);
	}
	assert_int_equal(req_decode((const unsigned char *)"\x07\x00", 2, &out),
			 -EINVAL);
}

struct scanned {
	unsigned seen[1200];
	size_t n, stop_after;
};

static int on_record(void *arg, const unsigned char *data, size_t len)
{
	struct scanned *sc = arg;
	unsigned i;

	memcpy(&i, data, 4);
	assert_int_equal(len, make(i, (unsigned char[1024]){ 0 }));
	sc->seen[sc->n++] = i;
	return sc->n == sc->stop_after ? -42 : 0;
}

/* A scan sees the unconsumed records in order, across segments, and
 * consumes none; it stops where its callback says. */
static void test_scan(void **state)
{
	struct jnl *j = open_ok(UINT64_C(1) << 20);
	struct scanned sc = { 0 };
	unsigned char buf[1024];
	unsigned i, n = 1000;

	assert_int_equal(jnl_scan(j, on_record, &sc), 0);
	assert_int_equal(sc.n, 0);
	for (i = 0; i < n; i++)
		assert_int_equal(jnl_append(j, buf, make(i, buf)), 0);
	for (i = 0; i < 10; i++)
		expect_next(j, i);
	assert_int_equal(jnl_scan(j, on_record, &sc), 0);
	assert_int_equal(sc.n, n - 10);
	for (i = 0; i < sc.n; i++)
		assert_int_equal(sc.seen[i], i + 10);
	assert_int_equal(jnl_records(j), n - 10);
	expect_next(j, 10);
	sc = (struct scanned){ .stop_after = 3 };
	assert_int_equal(jnl_scan(j, on_record, &sc), -42);
	assert_int_equal(sc.n, 3);
	assert_int_equal(sc.seen[2], 13);
	jnl_close(j);
}

/* What a journaled write means for the K-of-M history: a tested window's
 * decision and alarm.m, a retirement of one slice or of all; nothing for
 * a window without a decision or test, nor for a reference. */
static void test_decisions_of_journaled_writes(void **state)
{
	static const struct store_test t = {
		.test = "mmd", .statistic = 0.5, .p_value = 0.01, .threshold = 0.02,
		.drifted = true, .effect = NAN, .bandwidth = NAN, .effect_floor = NAN,
	};
	struct store_decision d = { .drifted = true, .alpha = 0.01, .alarm_k = 2,
				    .alarm_m = 3, .evaluated_us = 1700000000000000 };
	struct store_window w = { .model = "m", .slice = "s=a", .window_id = 42,
				  .start_us = 1, .end_us = 2, .n = 10,
				  .reference_set_id = 9, .tests = &t, .n_tests = 1,
				  .decision = &d };
	struct store_reference r = { .model = "m", .slice = "s=a", .id = 5,
				     .n = 0, .dim = 2, .persist = STORE_PERSIST_NONE };
	const char *model, *slice;
	int64_t id;
	bool drifted;
	unsigned alarm_m;
	struct req *in, *out;
	unsigned char *buf;
	size_t len;

	for (int kind = 0; kind < 6; kind++) {
		w.decision = kind == 1 ? NULL : &d;
		w.insufficient = kind == 2;
		d.drifted = kind != 3;
		if (kind == 4)
			assert_int_equal(req_new_retire("m", NULL, 5, "reset", &in), 0);
		else if (kind == 5)
			assert_int_equal(req_new_reference(&r, &in), 0);
		else
			assert_int_equal(req_new_window(&w, &in), 0);
		assert_int_equal(req_encode(in, &buf, &len), 0);
		assert_int_equal(req_decode(buf, len, &out), 0);
		assert_int_equal(req_decision(out, &model, &slice, &id, &drifted,
					      &alarm_m), kind == 0 || kind == 3);
		if (kind == 0 || kind == 3) {
			assert_string_equal(model, "m");
			assert_string_equal(slice, "s=a");
			assert_int_equal(id, 42);
			assert_int_equal(drifted, kind == 0);
			assert_int_equal(alarm_m, 3);
		}
		assert_int_equal(req_retirement(out, &model, &slice), kind == 4);
		if (kind == 4) {
			assert_string_equal(model, "m");
			assert_null(slice);
		}
		free(buf);
		req_free(out);
		req_free(in);
	}
	assert_int_equal(req_new_retire("m", "s=b", 5, "expired", &in), 0);
	assert_true(req_retirement(in, &model, &slice));
	assert_string_equal(slice, "s=b");
	req_free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_across_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_format, setup, teardown),
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test(test_decisions_of_journaled_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

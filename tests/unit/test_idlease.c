/* Unit tests for daemon/idlease: leases move ahead in blocks, survive a
 * reopen, are exact after ids_set_exact + ids_save; a bad file is refused
 * with its line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idlease.h"

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/driftd-ids-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/window_ids", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

static struct ids *open_ok(bool want_existed)
{
	struct ids *t;
	bool existed;
	char msg[256];

	if (ids_open(dir, &t, &existed, msg, sizeof(msg)) < 0)
		fail_msg("%s", msg);
	assert_int_equal(existed, want_existed);
	return t;
}

static void test_blocks_and_reopen(void **state)
{
	struct ids *t = open_ok(false);

	(void)state;
	assert_true(ids_lease(t, "m") == 0);
	/* Nothing handed out yet still writes a lease, so a later start
	 * knows this state directory was used. */
	assert_int_equal(ids_cover(t, "m", 0), 0);
	assert_true(ids_lease(t, "m") == IDS_BLOCK);
	assert_int_equal(ids_cover(t, "m", IDS_BLOCK - 1), 0);
	assert_true(ids_lease(t, "m") == IDS_BLOCK);
	assert_int_equal(ids_cover(t, "m", IDS_BLOCK), 0);
	assert_true(ids_lease(t, "m") == 2 * IDS_BLOCK);
	assert_int_equal(ids_cover(t, "other.model-2", 1000), 0);
	ids_free(t);

	t = open_ok(true);
	assert_true(ids_lease(t, "m") == 2 * IDS_BLOCK);
	assert_true(ids_lease(t, "other.model-2") == 1000 + IDS_BLOCK);
	assert_int_equal(ids_set_exact(t, "m", 70), 0);
	assert_int_equal(ids_save(t), 0);
	ids_free(t);

	t = open_ok(true);
	assert_true(ids_lease(t, "m") == 71);
	ids_free(t);
}

static void test_bad_file(void **state)
{
	char path[128], msg[256];
	struct ids *t;
	bool existed;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/window_ids", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("m\t5\nbroken line\n", f);
	fclose(f);
	assert_int_equal(ids_open(dir, &t, &existed, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "window_ids:2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blocks_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

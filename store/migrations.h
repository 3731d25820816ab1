/* The schema migrations compiled into the binary: migrations.c is generated
 * from store/migrations/NNN_name.sql by embed_sql.py.  Versions run 1..n. */
#ifndef DRIFTD_STORE_MIGRATIONS_H
#define DRIFTD_STORE_MIGRATIONS_H

#include <stddef.h>

struct store_migration {
	int version;
	const char *name; /* [a-z0-9_]+, recorded in driftd.schema_migrations */
	const char *sql;  /* no transaction control; run in one transaction */
};

extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

#endif

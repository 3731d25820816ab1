/* Window-id leases (prefix ids_): per model, an id above every window id
 * the daemon has handed out, kept in STATE_DIR/window_ids.  A daemon that
 * starts while PostgreSQL is away numbers its windows above the lease, so
 * no id is used twice even though the store's sequences cannot be read.
 * The file moves ahead in blocks of IDS_BLOCK ids (written when an id
 * reaches it: temporary file, fsync, rename) and is set to the exact
 * highest id at a clean shutdown, so ids jump by less than a block after a
 * crash and not at all after a clean stop.  Blocking local file I/O, a few
 * hundred bytes per block.  Loop thread only.  Errors: 0 or -errno. */
#ifndef DRIFTD_IDLEASE_H
#define DRIFTD_IDLEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDS_BLOCK 64

struct ids;

/* Reads STATE_DIR/window_ids if present (*EXISTED tells).  On failure
 * writes the reason to msg. */
int ids_open(const char *state_dir, struct ids **out, bool *existed,
	     char *msg, size_t msglen);
void ids_free(struct ids *t);

/* The lease of MODEL: no id at or above it was handed out; 0 if unknown. */
int64_t ids_lease(const struct ids *t, const char *model);

/* Makes the lease of MODEL exceed ID, writing the file when it moves. */
int ids_cover(struct ids *t, const char *model, int64_t id);

/* At a clean shutdown: sets the lease of MODEL to just above MAX_ID (no
 * write); ids_save then writes the file. */
int ids_set_exact(struct ids *t, const char *model, int64_t max_id);
int ids_save(struct ids *t);

#endif

/* journal: the store's spill journal (prefix jnl_).  A bounded, append-only
 * sequence of checksummed records kept in a directory of segment files
 * (NNNNNNNNNNNNNNNN.jnl), read back oldest first.  Segments are deleted as
 * soon as every record in them has been consumed, so the journal never
 * needs compacting.
 *
 * Record layout: u32 payload length, u32 CRC-32C of the payload, payload
 * (little-endian).  Every segment starts with the 8 bytes "DRIFTDJ1" and a
 * u32 format number; segments of another format are renamed *.stale and
 * left alone.  A record whose length or checksum is wrong (a write cut
 * short by a crash) ends its segment: it and the rest of that segment are
 * cut off and counted as discarded.
 *
 * The directory is locked (flock) against a second process.  Blocking file
 * I/O on a local disk: each append is one write and one fdatasync.  Not
 * thread-safe.  Errors: 0 or a negative errno. */
#ifndef DRIFTD_STORE_JOURNAL_H
#define DRIFTD_STORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct jnl;

/* Opens DIR (created, mode 0700, if missing) and checks every record.
 * MAX_BYTES bounds the segments' total size.  On failure writes the reason
 * to msg.  -EBUSY: another process holds the journal. */
int jnl_open(const char *dir, uint64_t max_bytes, uint32_t format,
	     struct jnl **out, char *msg, size_t msglen);

/* Appends one record of LEN bytes (1 .. 1 GiB) durably.  -ENOSPC: it would
 * exceed max_bytes; -EIO: the disk refused it (nothing was added);
 * -EINVAL: bad length. */
int jnl_append(struct jnl *j, const void *data, size_t len);

/* The oldest unconsumed record, as a malloc'd copy the caller frees.
 * -ENOENT: none; -ENOMEM; -EIO: it could not be read back (the rest of
 * its segment is discarded; call again for the next one). */
int jnl_peek(struct jnl *j, unsigned char **data, size_t *len);

/* Marks the record last returned by jnl_peek as done. */
void jnl_consume(struct jnl *j);

/* Calls FN with every unconsumed record, oldest first, consuming none (DATA
 * is valid during the call).  A record that cannot be read back ends the
 * scan of its segment, as jnl_peek would.  Stops at FN's first nonzero
 * return and returns it; else 0. */
int jnl_scan(struct jnl *j,
	     int (*fn)(void *arg, const unsigned char *data, size_t len),
	     void *arg);

size_t jnl_records(const struct jnl *j);	/* unconsumed */
uint64_t jnl_bytes(const struct jnl *j);	/* segment files, in total */
uint64_t jnl_max_bytes(const struct jnl *j);
uint64_t jnl_discarded(const struct jnl *j);	/* damaged records cut off */

void jnl_close(struct jnl *j);

#endif

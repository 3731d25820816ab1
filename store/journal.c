/* journal: segment files of checksummed records (see journal.h). */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAGIC "DRIFTDJ1"
#define SEG_HEADER 12			/* magic + u32 format */
#define REC_HEADER 8			/* u32 length + u32 CRC-32C */
#define MAX_RECORD (UINT64_C(1) << 30)
#define SEG_MIN (UINT64_C(64) << 10)
#define SEG_MAX (UINT64_C(16) << 20)

struct seg {
	uint64_t no;
	uint64_t size;		/* bytes, header included */
	size_t records;
};

struct jnl {
	int dirfd, lockfd;
	uint64_t max_bytes, seg_bytes, total, discarded;
	uint32_t format;
	struct seg *segs;	/* oldest first */
	size_t n_segs, cap;
	uint64_t next_no;
	int wfd;		/* the newest segment, for appending; -1 */
	uint64_t roff;		/* read position in segs[0] */
	size_t rdone;		/* records of segs[0] consumed */
	uint64_t peeked;	/* bytes of the record last peeked; 0 = none */
	size_t records;
};

/* CRC-32C (Castagnoli), reflected, table-driven. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
	static uint32_t table[256];
	uint32_t c = 0xffffffffu;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;

			for (int k = 0; k < 8; k++)
				v = v & 1 ? (v >> 1) ^ 0x82f63b78u : v >> 1;
			table[i] = v;
		}
	}
	while (n--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void seg_name(char *buf, size_t len, uint64_t no, const char *ext)
{
	snprintf(buf, len, "%016" PRIx64 ".%s", no, ext);
}

static int seg_open(const struct jnl *j, uint64_t no, int flags)
{
	char name[32];

	seg_name(name, sizeof(name), no, "jnl");
	return openat(j->dirfd, name, flags | O_CLOEXEC, 0600);
}

static void seg_unlink(const struct jnl *j, uint64_t no)
{
	char name[32];

	seg_name(name, sizeof(name), no, "jnl");
	unlinkat(j->dirfd, name, 0);
}

static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done,
				  (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -1 : (ssize_t)done;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Reads the record at OFF of FD (file size SIZE) into a new buffer.
 * Returns its payload length, or -1 when it is damaged or cut short. */
static int64_t read_record(int fd, uint64_t off, uint64_t size,
			   unsigned char **out)
{
	unsigned char h[REC_HEADER], *p;
	uint32_t len;

	if (size - off < REC_HEADER ||
	    pread_full(fd, h, REC_HEADER, off) != REC_HEADER)
		return -1;
	len = get_u32(h);
	if (len == 0 || len > MAX_RECORD || size - off - REC_HEADER < len ||
	    !(p = malloc(len)))
		return -1;
	if (pread_full(fd, p, len, off + REC_HEADER) != (ssize_t)len ||
	    crc32c(p, len) != get_u32(h + 4)) {
		free(p);
		return -1;
	}
	*out = p;
	return len;
}

static int add_seg(struct jnl *j, uint64_t no, uint64_t size, size_t records)
{
	if (j->n_segs == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 16;
		struct seg *grown = realloc(j->segs, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		j->segs = grown;
		j->cap = cap;
	}
	j->segs[j->n_segs++] = (struct seg){ no, size, records };
	j->total += size;
	j->records += records;
	if (no >= j->next_no)
		j->next_no = no + 1;
	return 0;
}

static int cmp_no(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Segment numbers in the directory, sorted. */
static int list_segs(struct jnl *j, uint64_t **out, size_t *n)
{
	int fd = dup(j->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	uint64_t *nos = NULL, no;
	size_t cnt = 0, cap = 0;
	char ext[8];

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (sscanf(e->d_name, "%16" SCNx64 ".%7s", &no, ext) != 2 ||
		    strcmp(ext, "jnl") || strlen(e->d_name) != 20)
			continue;
		if (cnt == cap) {
			uint64_t *grown;

			cap = cap ? cap * 2 : 16;
			if (!(grown = realloc(nos, cap * sizeof(*nos)))) {
				free(nos);
				closedir(d);
				return -ENOMEM;
			}
			nos = grown;
		}
		nos[cnt++] = no;
	}
	closedir(d);
	if (cnt > 1)
		qsort(nos, cnt, sizeof(*nos), cmp_no);
	*out = nos;
	*n = cnt;
	return 0;
}

/* Checks segment NO; keeps the good records, cuts the rest off.  A segment
 * of another format is renamed aside. */
static int scan_seg(struct jnl *j, uint64_t no, char *msg, size_t msglen)
{
	unsigned char h[SEG_HEADER], *p;
	char from[32], to[40];
	struct stat sb;
	uint64_t off = SEG_HEADER;
	size_t records = 0;
	int64_t len;
	int fd = seg_open(j, no, O_RDWR), err = 0;

	if (fd < 0 || fstat(fd, &sb) < 0) {
		err = -errno;
		snprintf(msg, msglen, "journal segment %016" PRIx64 ": %s", no,
			 strerror(errno));
		goto out;
	}
	if (pread_full(fd, h, SEG_HEADER, 0) != SEG_HEADER ||
	    memcmp(h, MAGIC, 8) || get_u32(h + 8) != j->format) {
		seg_name(from, sizeof(from), no, "jnl");
		seg_name(to, sizeof(to), no, "stale");
		renameat(j->dirfd, from, j->dirfd, to);
		j->discarded++;
		goto out;
	}
	while ((len = read_record(fd, off, (uint64_t)sb.st_size, &p)) > 0) {
		free(p);
		off += REC_HEADER + (uint64_t)len;
		records++;
	}
	if (off < (uint64_t)sb.st_size) {
		j->discarded++;
		if (ftruncate(fd, (off_t)off) < 0 || fdatasync(fd) < 0) {
			err = -errno;
			snprintf(msg, msglen, "journal segment %016" PRIx64
				 ": cannot cut off a damaged record: %s", no,
				 strerror(errno));
			goto out;
		}
	}
	err = add_seg(j, no, off, records);
out:
	if (fd >= 0)
		close(fd);
	return err;
}

static void drop_first(struct jnl *j);

static int lock_dir(struct jnl *j, char *msg, size_t msglen)
{
	j->lockfd = openat(j->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->lockfd < 0) {
		snprintf(msg, msglen, "journal lock: %s", strerror(errno));
		return -errno;
	}
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		snprintf(msg, msglen, "journal is in use by another process");
		return err;
	}
	return 0;
}

int jnl_open(const char *dir, uint64_t max_bytes, uint32_t format,
	     struct jnl **out, char *msg, size_t msglen)
{
	struct jnl *j = calloc(1, sizeof(*j));
	uint64_t *nos = NULL;
	size_t n = 0, i;
	int err;

	if (!j)
		return -ENOMEM;
	j->lockfd = j->wfd = -1;
	j->next_no = 1;
	j->max_bytes = max_bytes;
	j->format = format;
	j->seg_bytes = max_bytes / 8;
	j->seg_bytes = j->seg_bytes < SEG_MIN ? SEG_MIN :
		       j->seg_bytes > SEG_MAX ? SEG_MAX : j->seg_bytes;
	j->roff = SEG_HEADER;
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = -errno;
		snprintf(msg, msglen, "journal directory %s: %s", dir,
			 strerror(errno));
		j->dirfd = -1;
		goto fail;
	}
	if ((err = lock_dir(j, msg, msglen)) < 0 ||
	    (err = list_segs(j, &nos, &n)) < 0)
		goto fail;
	for (i = 0; i < n; i++)
		if ((err = scan_seg(j, nos[i], msg, msglen)) < 0)
			goto fail;
	free(nos);
	/* Segments holding no record (cut short before their first) go. */
	if (!j->records)
		while (j->n_segs)
			drop_first(j);
	*out = j;
	return 0;
fail:
	free(nos);
	jnl_close(j);
	return err;
}

/* A fresh segment for appending, its header durable with its name. */
static int new_seg(struct jnl *j)
{
	unsigned char h[SEG_HEADER];
	int fd = seg_open(j, j->next_no, O_WRONLY | O_CREAT | O_EXCL | O_APPEND);

	if (fd < 0)
		return -EIO;
	memcpy(h, MAGIC, 8);
	put_u32(h + 8, j->format);
	if (write(fd, h, SEG_HEADER) != SEG_HEADER || fdatasync(fd) < 0 ||
	    fsync(j->dirfd) < 0 || add_seg(j, j->next_no, SEG_HEADER, 0) < 0) {
		close(fd);
		seg_unlink(j, j->next_no);
		return -EIO;
	}
	if (j->wfd >= 0)
		close(j->wfd);
	j->wfd = fd;
	return 0;
}

static int open_last(struct jnl *j)
{
	if (j->wfd >= 0)
		return 0;
	j->wfd = seg_open(j, j->segs[j->n_segs - 1].no, O_WRONLY | O_APPEND);
	return j->wfd < 0 ? -EIO : 0;
}

int jnl_append(struct jnl *j, const void *data, size_t len)
{
	unsigned char h[REC_HEADER];
	struct iovec iov[2] = { { h, REC_HEADER }, { (void *)data, len } };
	uint64_t need = REC_HEADER + (uint64_t)len;
	struct seg *last;
	ssize_t w;

	if (len == 0 || len > MAX_RECORD)
		return -EINVAL;
	last = j->n_segs ? &j->segs[j->n_segs - 1] : NULL;
	if (j->total + need + (!last || last->size + need > j->seg_bytes ?
			       SEG_HEADER : 0) > j->max_bytes)
		return -ENOSPC;
	if ((!last || (last->size + need > j->seg_bytes &&
		       last->size > SEG_HEADER)) && new_seg(j) < 0)
		return -EIO;
	if (open_last(j) < 0)
		return -EIO;
	last = &j->segs[j->n_segs - 1];
	put_u32(h, (uint32_t)len);
	put_u32(h + 4, crc32c(data, len));
	w = writev(j->wfd, iov, 2);
	if (w != (ssize_t)need || fdatasync(j->wfd) < 0) {
		/* Leave no partial record behind for the next append. */
		if (ftruncate(j->wfd, (off_t)last->size) < 0) {
			close(j->wfd);
			j->wfd = -1;
		}
		return -EIO;
	}
	last->size += need;
	last->records++;
	j->total += need;
	j->records++;
	return 0;
}

/* Drops segs[0] (fully read or unreadable) with its unread records. */
static void drop_first(struct jnl *j)
{
	j->records -= j->segs[0].records - j->rdone;
	j->rdone = 0;
	j->total -= j->segs[0].size;
	seg_unlink(j, j->segs[0].no);
	if (j->n_segs == 1 && j->wfd >= 0) {
		close(j->wfd);
		j->wfd = -1;
	}
	memmove(j->segs, j->segs + 1, --j->n_segs * sizeof(*j->segs));
	j->roff = SEG_HEADER;
}

int jnl_peek(struct jnl *j, unsigned char **data, size_t *len)
{
	int64_t got;
	int fd;

	j->peeked = 0;
	while (j->records && j->roff >= j->segs[0].size)
		drop_first(j);
	if (!j->records)
		return -ENOENT;
	if ((fd = seg_open(j, j->segs[0].no, O_RDONLY)) < 0)
		got = -1;
	else
		got = read_record(fd, j->roff, j->segs[0].size, data);
	if (fd >= 0)
		close(fd);
	if (got < 0) {
		/* Unreadable now although it checked out at open: the rest
		 * of this segment cannot be trusted. */
		j->discarded++;
		drop_first(j);
		return -EIO;
	}
	*len = (size_t)got;
	j->peeked = REC_HEADER + (uint64_t)got;
	return 0;
}

void jnl_consume(struct jnl *j)
{
	if (!j->peeked)
		return;
	j->roff += j->peeked;
	j->peeked = 0;
	j->rdone++;
	j->records--;
	if (j->rdone == j->segs[0].records)
		drop_first(j);
}

int jnl_scan(struct jnl *j,
	     int (*fn)(void *arg, const unsigned char *data, size_t len),
	     void *arg)
{
	unsigned char *p;
	int64_t len;
	int err = 0;

	for (size_t i = 0; i < j->n_segs && !err; i++) {
		uint64_t off = i ? SEG_HEADER : j->roff;
		int fd = seg_open(j, j->segs[i].no, O_RDONLY);

		while (fd >= 0 && !err &&
		       (len = read_record(fd, off, j->segs[i].size, &p)) > 0) {
			err = fn(arg, p, (size_t)len);
			free(p);
			off += REC_HEADER + (uint64_t)len;
		}
		if (fd >= 0)
			close(fd);
	}
	return err;
}

size_t jnl_records(const struct jnl *j)
{
	return j->records;
}

uint64_t jnl_bytes(const struct jnl *j)
{
	return j->total;
}

uint64_t jnl_max_bytes(const struct jnl *j)
{
	return j->max_bytes;
}

uint64_t jnl_discarded(const struct jnl *j)
{
	return j->discarded;
}

void jnl_close(struct jnl *j)
{
	if (!j)
		return;
	if (j->wfd >= 0)
		close(j->wfd);
	if (j->lockfd >= 0)
		close(j->lockfd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->segs);
	free(j);
}

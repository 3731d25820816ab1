/* loadgen: the ingest benchmark's clients, and the trivial sink they are
 * compared with (bench/ingest_matrix.py drives it).  One thread and one
 * epoll set drive every connection, so the client costs the machine as
 * little as possible and the same client measures the daemon and the sink.
 *
 * Usage:
 *   loadgen send ADDR PROTO CLIENTS FILE REPEAT RECORDS
 *       Opens CLIENTS connections to ADDR, each sending FILE's bytes REPEAT
 *       times, then half-closes and reads until the peer closes.  PROTO:
 *       binary  FILE holds RECORDS frames; the driftd handshake (preface,
 *               HELLO, WELCOME) comes first, ACKs are summed;
 *       ndjson  FILE holds NDJSON lines; the summary line is read;
 *       raw     FILE is sent as it is (to `loadgen sink`).
 *       RECORDS is how many records one copy of FILE holds.  Prints one
 *       JSON object: records, accepted, rejected, bytes, seconds (first
 *       byte of the records sent to the last connection closed).
 *   loadgen sink ADDR
 *       Accepts connections on ADDR, reads each until EOF into a 256 KiB
 *       buffer, answers one byte and closes; runs until SIGTERM.
 * ADDR is tcp://HOST:PORT or unix:PATH.  Exit status 1 on any error. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)
#define FRAME_HEADER 16
#define T_HELLO 0x01
#define T_WELCOME 0x81
#define T_ACK 0x82
#define T_SUMMARY 0x84

enum proto { P_BINARY, P_NDJSON, P_RAW };

struct conn {
	int fd;
	size_t copy, off;	/* copies of FILE sent, offset in the current */
	bool sending;
	unsigned char *in;	/* unparsed replies (binary) or the tail (ndjson) */
	size_t in_len;
	uint64_t accepted, rejected;
};

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static _Noreturn void fail(const char *what)
{
	fprintf(stderr, "loadgen: %s\n", what);
	exit(1);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Fills a sockaddr for ADDR; returns its length. */
static socklen_t parse_addr(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		if (strlen(addr + 5) >= sizeof(un->sun_path))
			fail("unix socket path too long");
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, addr + 5);
		return sizeof(*un);
	}
	if (!strncmp(addr, "tcp://", 6)) {
		char host[256];
		const char *colon = strrchr(addr + 6, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
		socklen_t len;

		if (!colon || (size_t)(colon - addr - 6) >= sizeof(host))
			fail("address needs tcp://HOST:PORT");
		memcpy(host, addr + 6, (size_t)(colon - addr - 6));
		host[colon - addr - 6] = 0;
		if (getaddrinfo(host, colon + 1, &hints, &ai))
			fail("cannot resolve the address");
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		len = ai->ai_addrlen;
		freeaddrinfo(ai);
		return len;
	}
	fail("address must be tcp://HOST:PORT or unix:PATH");
	return 0;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write");
		p += n;
		len -= (size_t)n;
	}
}

static void read_all(int fd, unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("the daemon closed the connection during the handshake");
		buf += n;
		len -= (size_t)n;
	}
}

/* Preface and HELLO (empty token), then the WELCOME, before timing starts. */
static void handshake(int fd)
{
	static const char name[] = "loadgen";
	unsigned char hello[4 + FRAME_HEADER + 4 + sizeof(name) - 1] = "DRFB";
	unsigned char *h = hello + 4, hdr[FRAME_HEADER], *p;
	uint64_t len = 4 + sizeof(name) - 1;

	h[0] = 1;
	h[1] = T_HELLO;
	h[8] = (unsigned char)len;
	h[FRAME_HEADER + 2] = sizeof(name) - 1;
	memcpy(h + FRAME_HEADER + 4, name, sizeof(name) - 1);
	write_all(fd, hello, sizeof(hello));
	read_all(fd, hdr, sizeof(hdr));
	len = le64(hdr + 8);
	if (hdr[1] != T_WELCOME || len > 65536)
		fail("the daemon did not answer WELCOME");
	if (!(p = malloc(len + 1)))
		fail("out of memory");
	read_all(fd, p, len);
	free(p);
}

static int dial(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		die("socket");
	if (connect(fd, (const struct sockaddr *)ss, len) < 0)
		die("connect");
	if (ss->ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Takes the complete frames at the front of c->in: ACKs are counted. */
static void parse_frames(struct conn *c)
{
	size_t pos = 0;

	while (c->in_len - pos >= FRAME_HEADER) {
		const unsigned char *h = c->in + pos;
		uint64_t len = le64(h + 8);

		if (len > c->in_len - pos - FRAME_HEADER)
			break;
		if (h[1] == T_ACK && len >= 12) {
			c->accepted += le32(h + FRAME_HEADER + 4);
			c->rejected += le32(h + FRAME_HEADER + 8);
		}
		pos += FRAME_HEADER + len;
	}
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
}

/* The NDJSON summary is the last line of the replies. */
static void parse_summary(struct conn *c)
{
	char *line, *a, *r;

	while (c->in_len && c->in[c->in_len - 1] == '\n')
		c->in_len--;
	c->in[c->in_len] = 0;
	line = strrchr((char *)c->in, '\n');
	line = line ? line + 1 : (char *)c->in;
	a = strstr(line, "\"accepted\":");
	r = strstr(line, "\"rejected\":");
	if (!a || !r)
		fail("no NDJSON summary line from the daemon");
	c->accepted = strtoull(a + 11, NULL, 10);
	c->rejected = strtoull(r + 11, NULL, 10);
}

/* Keeps the last 4 KiB of NDJSON replies in c->in (8 KiB long). */
static void keep_tail(struct conn *c, const unsigned char *buf, size_t n)
{
	size_t keep = n < 4096 ? n : 4096;

	if (c->in_len + keep > 8191) {
		size_t drop = c->in_len + keep - 4096;

		memmove(c->in, c->in + drop, c->in_len - drop);
		c->in_len -= drop;
	}
	memcpy(c->in + c->in_len, buf + n - keep, keep);
	c->in_len += keep;
}

static bool on_readable(struct conn *c, enum proto proto, unsigned char *buf)
{
	for (;;) {
		ssize_t n = read(c->fd, buf, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n < 0)
			die("read");
		if (n == 0) {
			if (proto == P_NDJSON)
				parse_summary(c);
			return true;
		}
		if (proto == P_BINARY) {
			unsigned char *g = realloc(c->in, c->in_len + (size_t)n);

			if (!g)
				fail("out of memory");
			c->in = g;
			memcpy(c->in + c->in_len, buf, (size_t)n);
			c->in_len += (size_t)n;
			parse_frames(c);
		} else if (proto == P_NDJSON) {
			keep_tail(c, buf, (size_t)n);
		}
	}
}

static void on_writable(struct conn *c, int ep, const unsigned char *data,
			size_t size, size_t repeat)
{
	while (c->sending) {
		ssize_t n = write(c->fd, data + c->off, size - c->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			die("write");
		c->off += (size_t)n;
		if (c->off < size)
			continue;
		c->off = 0;
		if (++c->copy < repeat)
			continue;
		c->sending = false;
		shutdown(c->fd, SHUT_WR);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

static int cmd_send(char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl = parse_addr(argv[0], &ss);
	enum proto proto = !strcmp(argv[1], "binary") ? P_BINARY :
			   !strcmp(argv[1], "ndjson") ? P_NDJSON : P_RAW;
	size_t clients = strtoul(argv[2], NULL, 10);
	size_t repeat = strtoul(argv[4], NULL, 10);
	uint64_t records = strtoull(argv[5], NULL, 10), accepted = 0,
		 rejected = 0;
	int fd = open(argv[3], O_RDONLY), ep = epoll_create1(0);
	struct stat sb;
	unsigned char *data, *buf = malloc(READ_CHUNK);
	struct conn *conns = calloc(clients, sizeof(*conns));
	size_t open_conns = clients, i;
	double t0;

	if (proto == P_RAW && strcmp(argv[1], "raw"))
		fail("PROTO must be binary, ndjson or raw");
	if (fd < 0 || fstat(fd, &sb) < 0 || ep < 0)
		die(argv[3]);
	if (!clients || !repeat || !sb.st_size || !buf || !conns)
		fail("CLIENTS, REPEAT and FILE must be non-empty");
	data = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (data == MAP_FAILED)
		die("mmap");
	for (i = 0; i < clients; i++) {
		struct conn *c = &conns[i];

		c->fd = dial(&ss, sl);
		if (proto == P_BINARY)
			handshake(c->fd);
		if (proto == P_NDJSON && !(c->in = malloc(8192)))
			fail("out of memory");
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
		c->sending = true;
	}
	t0 = now();
	for (i = 0; i < clients; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
					  .data.ptr = &conns[i] };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
			die("epoll_ctl");
	}
	while (open_conns) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;

			if (c->sending && (evs[k].events & EPOLLOUT))
				on_writable(c, ep, data, (size_t)sb.st_size,
					    repeat);
			if ((evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    on_readable(c, proto, buf)) {
				if (c->sending)
					fail("the peer closed the connection "
					     "before all was sent");
				close(c->fd);
				open_conns--;
			}
		}
	}
	t0 = now() - t0;
	for (i = 0; i < clients; i++) {
		accepted += conns[i].accepted;
		rejected += conns[i].rejected;
		free(conns[i].in);
	}
	printf("{\"clients\": %zu, \"records\": %llu, \"accepted\": %llu, "
	       "\"rejected\": %llu, \"bytes\": %llu, \"seconds\": %.6f}\n",
	       clients, (unsigned long long)(records * repeat * clients),
	       (unsigned long long)accepted, (unsigned long long)rejected,
	       (unsigned long long)((uint64_t)sb.st_size * repeat * clients),
	       t0);
	return 0;
}

static int listen_on(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t sl = parse_addr(addr, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		die("socket");
	if (ss.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&ss)->sun_path);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0)
		die(addr);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Reads every connection to EOF, answers one byte, closes. */
static _Noreturn void cmd_sink(char **argv)
{
	int lfd = listen_on(argv[0]), ep = epoll_create1(0);
	unsigned char *buf = malloc(READ_CHUNK);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };

	if (ep < 0 || !buf || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll");
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			ssize_t got;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL,
						    SOCK_NONBLOCK)) >= 0) {
					ev = (struct epoll_event){
						.events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			while ((got = read(fd, buf, READ_CHUNK)) > 0)
				;
			if (got == 0) {
				write_all(fd, "k", 1);
				close(fd);
			} else if (errno != EAGAIN && errno != EINTR) {
				close(fd);
			}
		}
	}
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 8 && !strcmp(argv[1], "send"))
		return cmd_send(argv + 2);
	if (argc == 3 && !strcmp(argv[1], "sink"))
		cmd_sink(argv + 2);
	fprintf(stderr, "usage: loadgen send ADDR binary|ndjson|raw CLIENTS "
		"FILE REPEAT RECORDS\n       loadgen sink ADDR\n");
	return 2;
}

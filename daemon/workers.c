/* A fixed pool of pthreads around one FIFO.  Finished jobs go to a second
 * list and an event made active from the worker wakes the loop, which
 * calls done() in order of completion.  Each worker records when its
 * current job started, which is the heartbeat the watchdog reads. */
#include "workers.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct worker {
	pthread_t thread;
	struct wq *q;
	uint64_t started_us;	/* monotonic start of the current job, 0 = idle */
};

struct wq {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct wq_job *head, *tail;	/* waiting */
	struct wq_job *done_head, *done_tail;
	size_t depth, running, finished;
	bool stop;
	struct event *done_ev;
	struct worker *workers;
	unsigned n_threads;
#ifdef DRIFTD_TEST_HOOKS
	uint64_t wedge_us;
#endif
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Never 0, which means "idle". */
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u + 1;
}

#ifdef DRIFTD_TEST_HOOKS
/* Test builds only (driftd-test-hooks, never installed): with
 * DRIFTD_TEST_WEDGE_MS set, every job first sleeps that long, standing in
 * for a detector that does not come back. */
static void test_hooks_init(struct wq *q)
{
	const char *ms = getenv("DRIFTD_TEST_WEDGE_MS");

	q->wedge_us = ms ? strtoull(ms, NULL, 10) * 1000u : 0;
}

static void test_hooks_wedge(const struct wq *q)
{
	struct timespec ts = {
		.tv_sec = (time_t)(q->wedge_us / 1000000u),
		.tv_nsec = (long)(q->wedge_us % 1000000u) * 1000,
	};

	while (q->wedge_us && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
#else
static void test_hooks_init(struct wq *q)
{
	(void)q;
}

static void test_hooks_wedge(const struct wq *q)
{
	(void)q;
}
#endif

static void push(struct wq_job **head, struct wq_job **tail, struct wq_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static struct wq_job *pop(struct wq_job **head, struct wq_job **tail)
{
	struct wq_job *j = *head;

	if (j) {
		*head = j->next;
		if (!*head)
			*tail = NULL;
	}
	return j;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct wq *q = w->q;
	struct wq_job *j;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stop && !q->head)
			pthread_cond_wait(&q->wake, &q->lock);
		if (q->stop)
			break;
		j = pop(&q->head, &q->tail);
		q->depth--;
		q->running++;
		w->started_us = mono_us();
		pthread_mutex_unlock(&q->lock);

		j->status = 0;
		test_hooks_wedge(q);
		j->run(j);

		pthread_mutex_lock(&q->lock);
		w->started_us = 0;
		q->running--;
		q->finished++;
		push(&q->done_head, &q->done_tail, j);
		event_active(q->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void deliver(struct wq *q)
{
	struct wq_job *list, *j;

	pthread_mutex_lock(&q->lock);
	list = q->done_head;
	q->done_head = q->done_tail = NULL;
	pthread_mutex_unlock(&q->lock);
	while ((j = list)) {
		list = j->next;
		pthread_mutex_lock(&q->lock);
		q->finished--;
		pthread_mutex_unlock(&q->lock);
		j->done(j);
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	deliver(arg);
}

struct wq *wq_new(struct event_base *base, unsigned threads)
{
	struct wq *q = calloc(1, sizeof(*q));
	unsigned i;

	if (!q)
		return NULL;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	test_hooks_init(q);
	q->done_ev = event_new(base, -1, 0, on_done, q);
	q->workers = calloc(threads, sizeof(*q->workers));
	if (!q->done_ev || !q->workers)
		goto fail;
	for (i = 0; i < threads; i++) {
		q->workers[i].q = q;
		if (pthread_create(&q->workers[i].thread, NULL, worker_main,
				   &q->workers[i]))
			goto fail;
		q->n_threads++;
	}
	return q;
fail:
	wq_free(q);
	errno = ENOMEM;
	return NULL;
}

int wq_submit(struct wq *q, struct wq_job *job, size_t max_depth)
{
	pthread_mutex_lock(&q->lock);
	if (max_depth && q->depth >= max_depth) {
		pthread_mutex_unlock(&q->lock);
		return -ENOBUFS;
	}
	push(&q->head, &q->tail, job);
	q->depth++;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

size_t wq_depth(struct wq *q)
{
	size_t d;

	pthread_mutex_lock(&q->lock);
	d = q->depth;
	pthread_mutex_unlock(&q->lock);
	return d;
}

size_t wq_in_flight(struct wq *q)
{
	size_t d;

	pthread_mutex_lock(&q->lock);
	d = q->depth + q->running + q->finished;
	pthread_mutex_unlock(&q->lock);
	return d;
}

unsigned wq_threads(const struct wq *q)
{
	return q->n_threads;
}

uint64_t wq_longest_run_us(struct wq *q)
{
	uint64_t now = mono_us(), oldest = now;
	unsigned i;

	pthread_mutex_lock(&q->lock);
	for (i = 0; i < q->n_threads; i++)
		if (q->workers[i].started_us && q->workers[i].started_us < oldest)
			oldest = q->workers[i].started_us;
	pthread_mutex_unlock(&q->lock);
	return now - oldest;
}

size_t wq_running(struct wq *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->running;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void wq_free(struct wq *q)
{
	struct wq_job *j;
	unsigned i;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->n_threads; i++)
		pthread_join(q->workers[i].thread, NULL);
	deliver(q);
	while ((j = pop(&q->head, &q->tail))) {
		j->status = -ECANCELED;
		j->done(j);
	}
	if (q->done_ev)
		event_free(q->done_ev);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q->workers);
	free(q);
}

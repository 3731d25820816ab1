/* Worker threads for detector jobs (prefix wq_).  run() executes on a
 * worker thread; done() is called later on the loop thread, so jobs hand
 * results back without locks of their own.  The loop never waits on a job.
 * All wq_* functions are called from the loop thread. */
#ifndef DRIFTD_WORKERS_H
#define DRIFTD_WORKERS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

struct wq_job {
	void (*run)(struct wq_job *job);	/* on a worker */
	void (*done)(struct wq_job *job);	/* on the loop; may free job */
	struct wq_job *next;
	int status;	/* in done(): 0 = ran, -ECANCELED = never ran */
};

struct wq;

/* THREADS = 0 means one per online CPU.  Needs evthread_use_pthreads()
 * before BASE was created.  NULL on failure (errno set). */
struct wq *wq_new(struct event_base *base, unsigned threads);

/* Queues JOB; never blocks.  Returns 0, or -ENOBUFS when MAX_DEPTH jobs
 * are already waiting (0 = unbounded). */
int wq_submit(struct wq *q, struct wq_job *job, size_t max_depth);

size_t wq_depth(struct wq *q);		/* waiting, not running */
size_t wq_in_flight(struct wq *q);	/* waiting + running + done not yet delivered */
unsigned wq_threads(const struct wq *q);

/* Heartbeat: how long the longest-running job has been on its worker, in
 * µs, 0 when no job runs.  A job that runs far longer than any detector
 * should is a wedged worker; the caller decides what "far" is. */
uint64_t wq_longest_run_us(struct wq *q);
size_t wq_running(struct wq *q);	/* jobs on a worker right now */

/* Joins the threads after their running jobs finish, then calls done()
 * for every job not yet delivered (status -ECANCELED for those that never
 * ran) and frees Q. */
void wq_free(struct wq *q);

#endif

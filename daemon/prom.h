/* Prometheus text exposition format 0.0.4 (prefix prom_): metric families,
 * samples with escaped labels, and fixed-bucket latency histograms.  Adding
 * a metric to /metrics is one prom_counter / prom_gauge / prom_histogram
 * call, or prom_family followed by one prom_sample per labelled series.
 * Loop thread only; no allocation besides the evbuffer's. */
#ifndef DRIFTD_PROM_H
#define DRIFTD_PROM_H

#include <stdint.h>

struct evbuffer;

/* Upper bounds in seconds, shared by every histogram: 0.5 ms .. 30 s. */
#define PROM_BUCKETS 15
extern const double prom_bucket_bounds[PROM_BUCKETS];

struct prom_hist {
	uint64_t counts[PROM_BUCKETS + 1];	/* per bucket, last = over 30 s */
	uint64_t count;
	double sum;				/* seconds */
};

void prom_observe(struct prom_hist *h, double seconds);
void prom_observe_us(struct prom_hist *h, uint64_t us);

/* "# HELP" and "# TYPE" lines; type is counter, gauge or histogram. */
void prom_family(struct evbuffer *b, const char *name, const char *type,
		 const char *help);
/* One sample line: NAME{k1="v1",...} VALUE.  The variadic part is
 * key, value string pairs ended by NULL; values are escaped (\\, \", \n).
 * NaN and infinities print as Prometheus spells them. */
void prom_sample(struct evbuffer *b, const char *name, double value, ...)
	__attribute__((sentinel));
/* Family and one unlabelled sample; uint64 printed exactly. */
void prom_counter(struct evbuffer *b, const char *name, const char *help,
		  uint64_t value);
void prom_gauge(struct evbuffer *b, const char *name, const char *help,
		double value);
/* Family and its _bucket (cumulative), _sum and _count series. */
void prom_histogram(struct evbuffer *b, const char *name, const char *help,
		    const struct prom_hist *h);

#endif

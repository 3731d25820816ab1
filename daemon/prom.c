/* Prometheus text exposition: escaping, number formatting, histograms. */
#include "prom.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

const double prom_bucket_bounds[PROM_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30,
};

void prom_observe(struct prom_hist *h, double seconds)
{
	size_t i = 0;

	while (i < PROM_BUCKETS && seconds > prom_bucket_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += seconds;
}

void prom_observe_us(struct prom_hist *h, uint64_t us)
{
	prom_observe(h, (double)us / 1e6);
}

/* The shorter of %.15g and %.17g that reads back as V. */
static const char *shortest(double v, char *buf, size_t len)
{
	snprintf(buf, len, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, len, "%.17g", v);
	return buf;
}

static void put_value(struct evbuffer *b, double v)
{
	char buf[32];

	if (isnan(v))
		evbuffer_add_printf(b, " NaN\n");
	else if (isinf(v))
		evbuffer_add_printf(b, " %sInf\n", v > 0 ? "+" : "-");
	else if (fabs(v) < 9e15 && v == (double)(int64_t)v)
		evbuffer_add_printf(b, " %" PRId64 "\n", (int64_t)v);
	else
		evbuffer_add_printf(b, " %s\n", shortest(v, buf, sizeof(buf)));
}

/* Label values are arbitrary UTF-8 from clients (slice labels). */
static void put_escaped(struct evbuffer *b, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
				  *s == '\n' ? "\\n" : NULL;

		if (!esc)
			continue;
		evbuffer_add(b, run, (size_t)(s - run));
		evbuffer_add(b, esc, 2);
		run = s + 1;
	}
	evbuffer_add(b, run, (size_t)(s - run));
}

static void put_labels(struct evbuffer *b, va_list ap)
{
	const char *k, *v;
	char sep = '{';

	while ((k = va_arg(ap, const char *))) {
		v = va_arg(ap, const char *);
		evbuffer_add_printf(b, "%c%s=\"", sep, k);
		put_escaped(b, v ? v : "");
		evbuffer_add(b, "\"", 1);
		sep = ',';
	}
	if (sep == ',')
		evbuffer_add(b, "}", 1);
}

void prom_family(struct evbuffer *b, const char *name, const char *type,
		 const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			    name, type);
}

void prom_sample(struct evbuffer *b, const char *name, double value, ...)
{
	va_list ap;

	evbuffer_add_printf(b, "%s", name);
	va_start(ap, value);
	put_labels(b, ap);
	va_end(ap);
	put_value(b, value);
}

void prom_counter(struct evbuffer *b, const char *name, const char *help,
		  uint64_t value)
{
	prom_family(b, name, "counter", help);
	evbuffer_add_printf(b, "%s %" PRIu64 "\n", name, value);
}

void prom_gauge(struct evbuffer *b, const char *name, const char *help,
		double value)
{
	prom_family(b, name, "gauge", help);
	prom_sample(b, name, value, NULL);
}

void prom_histogram(struct evbuffer *b, const char *name, const char *help,
		    const struct prom_hist *h)
{
	uint64_t cum = 0;
	size_t i;

	prom_family(b, name, "histogram", help);
	for (i = 0; i < PROM_BUCKETS; i++) {
		cum += h->counts[i];
		evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n",
				    name, prom_bucket_bounds[i], cum);
	}
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n"
			    "%s_sum %.9g\n%s_count %" PRIu64 "\n",
			    name, h->count, name, h->sum, name, h->count);
}

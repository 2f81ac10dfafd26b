/* stats.h — summaries of repeated measurements (benchmarks, the traffic client). */
#pragma once

struct sample_summary {
    double median, min, max;
    unsigned n;
};

/* Sorts v[0..n) in place and summarises it; n 0 gives zeroes. */
void sample_summarize(double *v, unsigned n, struct sample_summary *out);

#include "config.h"

#include <stdlib.h>

#include "util/stats.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

void sample_summarize(double *v, unsigned n, struct sample_summary *out)
{
    *out = (struct sample_summary){ .n = n };
    if (n == 0)
        return;
    qsort(v, n, sizeof(*v), cmp_double);
    out->min = v[0];
    out->max = v[n - 1];
    out->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The status page, compiled in from daemon/www/ by embed_file.py (prefix
 * www_): HTML with its CSS, SVG and JavaScript inline, no external assets. */
#ifndef DRIFTD_WWW_H
#define DRIFTD_WWW_H

#include <stddef.h>

extern const unsigned char www_index_html[];
extern const size_t www_index_html_len;

#endif

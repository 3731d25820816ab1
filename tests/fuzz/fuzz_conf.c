/* libFuzzer harness for conf_load_string: any bytes must give either a
 * config or an error message, never a crash, leak or undefined behaviour. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct conf *c = NULL;
    char err[1024], keys[256];

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (conf_load_string(text, "fuzz.ini", &c, err, sizeof err) == 0) {
        /* A loaded struct must hold together: every name resolves, and a
         * config never needs a restart relative to itself. */
        for (size_t i = 0; i < c->n_models; i++) {
            if (conf_model_find(c, c->models[i].name) != &c->models[i])
                abort();
            if (c->models[i].on_drift && !conf_webhook_find(c, c->models[i].on_drift))
                abort();
        }
        if (conf_restart_keys(c, c, keys, sizeof keys) != 0)
            abort();
        conf_free(c);
    } else if (c || !err[0]) {
        abort();
    }
    free(text);
    return 0;
}

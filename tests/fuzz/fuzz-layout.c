/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the layout decoders: the input is tried as a Cloud
 * Hypervisor state.json and as a layout spec string; whatever layout comes
 * out must answer lookups consistently (every offset found maps back to the
 * same gpa, and stays inside the file size).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/layout.h"

static void check(const struct rh_layout *l, const uint8_t *data, size_t size)
{
        uint64_t probes[4] = {0, 0xc0000000, 0x100000000, UINT64_MAX};
        size_t n = rh_layout_n_regions(l);

        if (size >= 8)
                memcpy(&probes[0], data, 8);
        for (size_t i = 0; i < n; i++) {
                const struct rh_region *rg = rh_layout_region(l, i);
                uint64_t off, gpa;

                if (rh_layout_gpa_to_offset(l, rg->gpa, 1, &off, NULL) != 0 || off != rg->offset)
                        abort();
                if (rh_layout_offset_to_gpa(l, off, &gpa, NULL) != 0 || gpa != rg->gpa)
                        abort();
        }
        for (size_t i = 0; i < 4; i++) {
                uint64_t off, gpa;

                if (rh_layout_gpa_to_offset(l, probes[i], 4096, &off, NULL) == 0) {
                        if (off >= rh_layout_file_size(l))
                                abort();
                        if (rh_layout_offset_to_gpa(l, off, &gpa, NULL) != 0 || gpa != probes[i])
                                abort();
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct rh_layout *l = NULL;
        char *spec;

        if (rh_layout_new_cloud_hypervisor((const char *)data, size, &l, NULL) == 0) {
                check(l, data, size);
                l = rh_layout_free(l);
        }
        /* Spec strings, minus the ones that read files. */
        spec = strndup((const char *)data, size);
        if (spec && strncmp(spec, "cloud-hypervisor:", 17) != 0 && rh_layout_parse(spec, &l, NULL) == 0) {
                check(l, data, size);
                rh_layout_free(l);
        }
        free(spec);
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Decoder of Firecracker's userfaultfd handshake (see handshake.h for the
 * message and its versions). Pure: no I/O, no global state, so the pager,
 * the unit test and the fuzz target run the same code on the same bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "cleanup.h" /* ELEMENTSOF; jansson >= 2.9 ships json_decrefp */
#include "handshake.h"

enum {
        F_HVA = 1 << 0,
        F_SIZE = 1 << 1,
        F_OFFSET = 1 << 2,
        F_PAGE_SIZE = 1 << 3,
        F_PAGE_SIZE_KIB = 1 << 4,
};

static const struct {
        const char *name;
        unsigned bit;
} known_fields[] = {
        { "base_host_virt_addr", F_HVA },
        { "size", F_SIZE },
        { "offset", F_OFFSET },
        { "page_size", F_PAGE_SIZE },
        { "page_size_kib", F_PAGE_SIZE_KIB },
};

const char *pager_fields_name(enum pager_fields fields)
{
        switch (fields) {
        case PAGER_FIELDS_V1_1:
                return "v1.1-v1.6";
        case PAGER_FIELDS_V1_7:
                return "v1.7-v1.11";
        case PAGER_FIELDS_V1_12:
                return "v1.12+";
        case PAGER_FIELDS_PAGE_SIZE:
                return "page_size only";
        }
        return "?";
}

static bool is_power_of_two(uint64_t v)
{
        return v && !(v & (v - 1));
}

/* One region object: fields into @ret, the set of fields present into *ret_seen. */
static int decode_region(json_t *obj, size_t i, struct pager_region *ret, uint64_t *ret_page_size_kib,
                         unsigned *ret_seen, struct rh_error *err)
{
        uint64_t v[ELEMENTSOF(known_fields)] = {};
        unsigned seen = 0;
        const char *key;
        json_t *val;

        if (!json_is_object(obj))
                return rh_error_set(err, -EBADMSG, "region %zu: not a JSON object", i);
        json_object_foreach(obj, key, val) {
                size_t k;
                for (k = 0; k < ELEMENTSOF(known_fields); k++)
                        if (strcmp(key, known_fields[k].name) == 0)
                                break;
                /* Unknown keys are ignored: a later Firecracker may add some. */
                if (k == ELEMENTSOF(known_fields))
                        continue;
                if (!json_is_integer(val) || json_integer_value(val) < 0)
                        return rh_error_set(err, -EBADMSG, "region %zu: %s is not a non-negative integer", i, key);
                v[k] = (uint64_t)json_integer_value(val);
                seen |= known_fields[k].bit;
        }
        for (size_t k = 0; k < 3; k++)
                if (!(seen & known_fields[k].bit))
                        return rh_error_set(err, -EBADMSG, "region %zu: no %s", i, known_fields[k].name);
        ret->hva = v[0];
        ret->size = v[1];
        ret->offset = v[2];
        ret->page_size = v[3];
        *ret_page_size_kib = v[4];
        *ret_seen = seen;
        return 0;
}

static int fields_of(unsigned seen, enum pager_fields *ret)
{
        switch (seen & (F_PAGE_SIZE | F_PAGE_SIZE_KIB)) {
        case 0:
                *ret = PAGER_FIELDS_V1_1;
                return 0;
        case F_PAGE_SIZE_KIB:
                *ret = PAGER_FIELDS_V1_7;
                return 0;
        case F_PAGE_SIZE | F_PAGE_SIZE_KIB:
                *ret = PAGER_FIELDS_V1_12;
                return 0;
        default:
                *ret = PAGER_FIELDS_PAGE_SIZE;
                return 0;
        }
}

static int check_region(const struct pager_handshake *hs, size_t i, uint64_t expect_offset, struct rh_error *err)
{
        const struct pager_region *rg = &hs->regions[i];

        if (!is_power_of_two(rg->page_size) || rg->page_size < 4096 || rg->page_size > PAGER_PAGE_SIZE_MAX)
                return rh_error_set(err, -EINVAL, "region %zu: page size %" PRIu64
                                    " is not a power of two between 4096 and %llu", i, rg->page_size,
                                    (unsigned long long)PAGER_PAGE_SIZE_MAX);
        if (rg->size == 0 || rg->size % rg->page_size)
                return rh_error_set(err, -EINVAL, "region %zu: size %" PRIu64 " is not a positive multiple of its page size %" PRIu64,
                                    i, rg->size, rg->page_size);
        if (rg->hva % rg->page_size)
                return rh_error_set(err, -EINVAL, "region %zu: host address 0x%" PRIx64 " is not aligned to its page size %" PRIu64,
                                    i, rg->hva, rg->page_size);
        if (rg->hva >= PAGER_HVA_LIMIT || rg->size > PAGER_HVA_LIMIT - rg->hva)
                return rh_error_set(err, -EINVAL, "region %zu: host range 0x%" PRIx64 "+0x%" PRIx64 " is not a user address range",
                                    i, rg->hva, rg->size);
        if (rg->offset != expect_offset)
                return rh_error_set(err, -EINVAL, "region %zu: offset %" PRIu64 " is not the sum of the previous sizes (%" PRIu64 ")",
                                    i, rg->offset, expect_offset);
        for (size_t j = 0; j < i; j++) {
                const struct pager_region *o = &hs->regions[j];
                if (rg->hva < o->hva + o->size && o->hva < rg->hva + rg->size)
                        return rh_error_set(err, -EINVAL, "region %zu: host range 0x%" PRIx64 "+0x%" PRIx64
                                            " overlaps region %zu", i, rg->hva, rg->size, j);
        }
        return 0;
}

int pager_handshake_decode(const char *text, size_t len, uint64_t mem_file_size, uint64_t host_page_size,
                           struct pager_handshake *ret_hs, struct rh_error *err)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        struct pager_handshake hs = {};
        json_error_t je;
        uint64_t total = 0;
        size_t n;
        int r;

        if (len > PAGER_HANDSHAKE_MAX)
                return rh_error_set(err, -EMSGSIZE, "handshake longer than %u bytes", PAGER_HANDSHAKE_MAX);
        if (len == 0)
                return rh_error_set(err, -EAGAIN, "handshake: no bytes yet");
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!root) {
                if (json_error_code(&je) == json_error_premature_end_of_input)
                        return rh_error_set(err, -EAGAIN, "handshake: incomplete JSON");
                if (json_error_code(&je) == json_error_numeric_overflow)
                        return rh_error_set(err, -EINVAL, "handshake: number out of range at byte %d", je.position);
                return rh_error_set(err, -EBADMSG, "handshake: not JSON: %s at byte %d", je.text, je.position);
        }
        if (!json_is_array(root))
                return rh_error_set(err, -EBADMSG, "handshake: not a JSON array of regions");
        n = json_array_size(root);
        if (n == 0)
                return rh_error_set(err, -EINVAL, "handshake: no regions");
        if (n > PAGER_MAX_REGIONS)
                return rh_error_set(err, -E2BIG, "handshake: %zu regions, at most %d", n, PAGER_MAX_REGIONS);

        for (size_t i = 0; i < n; i++) {
                struct pager_region *rg = &hs.regions[i];
                enum pager_fields fields;
                uint64_t kib = 0;
                unsigned seen = 0;

                r = decode_region(json_array_get(root, i), i, rg, &kib, &seen, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "handshake");
                fields_of(seen, &fields);
                if (i == 0)
                        hs.fields = fields;
                else if (fields != hs.fields)
                        return rh_error_set(err, -EBADMSG, "handshake: region %zu has the %s field set, region 0 the %s one",
                                            i, pager_fields_name(fields), pager_fields_name(hs.fields));
                switch (fields) {
                case PAGER_FIELDS_V1_1:
                        rg->page_size = host_page_size;
                        break;
                case PAGER_FIELDS_V1_7:
                        rg->page_size = kib; /* bytes, despite the name */
                        break;
                case PAGER_FIELDS_V1_12:
                        if (kib != rg->page_size)
                                return rh_error_set(err, -EINVAL, "handshake: region %zu: page_size %" PRIu64
                                                    " and page_size_kib %" PRIu64 " differ", i, rg->page_size, kib);
                        break;
                case PAGER_FIELDS_PAGE_SIZE:
                        break;
                }
                r = check_region(&hs, i, total, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "handshake");
                if (rg->size > UINT64_MAX - total)
                        return rh_error_set(err, -EINVAL, "handshake: region %zu: sizes overflow", i);
                total += rg->size;
                hs.n_regions = i + 1;
        }
        if (total != mem_file_size)
                return rh_error_set(err, -EINVAL, "handshake: regions cover %" PRIu64 " bytes, the memory file has %" PRIu64,
                                    total, mem_file_size);
        *ret_hs = hs;
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for pager_handshake_decode, the decoder of the one
 * message a restoring Firecracker sends to the page server (src/pager). The
 * first input byte picks the memory file size the regions must cover (so
 * valid inputs of several sizes are reachable), the rest is the message. A
 * failure must be a documented errno with its message recorded and must
 * leave the output untouched; a success must describe regions the pager can
 * serve blindly: power-of-two page sizes, aligned non-overlapping host
 * ranges inside user space, offsets the running sum, the file covered.
 * Every prefix of an accepted message must be -EAGAIN or an error, never a
 * second, different success.
 */
#include <errno.h>

#include "fuzz-common.h"
#include "src/pager/handshake.h"

static void check_ok(const struct pager_handshake *hs, uint64_t mem_size)
{
        uint64_t total = 0;

        fuzz_check(hs->n_regions >= 1 && hs->n_regions <= PAGER_MAX_REGIONS, "n_regions %zu", hs->n_regions);
        fuzz_check(hs->fields >= PAGER_FIELDS_V1_1 && hs->fields <= PAGER_FIELDS_PAGE_SIZE, "fields %d", hs->fields);
        for (size_t i = 0; i < hs->n_regions; i++) {
                const struct pager_region *rg = &hs->regions[i];
                fuzz_check(rg->page_size >= 4096 && rg->page_size <= PAGER_PAGE_SIZE_MAX &&
                           !(rg->page_size & (rg->page_size - 1)), "page size %llu", (unsigned long long)rg->page_size);
                fuzz_check(rg->size && rg->size % rg->page_size == 0 && rg->hva % rg->page_size == 0, "alignment");
                fuzz_check(rg->hva < PAGER_HVA_LIMIT && rg->size <= PAGER_HVA_LIMIT - rg->hva, "hva range");
                fuzz_check(rg->offset == total, "offset");
                for (size_t j = 0; j < i; j++)
                        fuzz_check(rg->hva >= hs->regions[j].hva + hs->regions[j].size ||
                                   hs->regions[j].hva >= rg->hva + rg->size, "overlap %zu %zu", i, j);
                total += rg->size;
        }
        fuzz_check(total == mem_size, "total %llu", (unsigned long long)total);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const uint64_t sizes[4] = { 1ull << 26, 5ull << 30, 4096, 1ull << 21 };
        static struct pager_handshake hs, sentinel, again;
        struct rh_error err = {};
        uint64_t mem_size;
        int r;

        if (size < 1)
                return 0;
        mem_size = sizes[data[0] & 3];
        memset(&hs, 0xa5, sizeof(hs));
        sentinel = hs;
        r = pager_handshake_decode((const char *)data + 1, size - 1, mem_size, 4096, &hs, &err);
        if (r < 0) {
                fuzz_check(r == -EAGAIN || r == -EBADMSG || r == -EINVAL || r == -E2BIG || r == -EMSGSIZE,
                           "unexpected errno %d", r);
                fuzz_check(err.code == -r && err.msg[0], "error not recorded: %d \"%s\"", err.code, err.msg);
                fuzz_check(memcmp(&hs, &sentinel, sizeof(hs)) == 0, "output written on failure");
                return 0;
        }
        check_ok(&hs, mem_size);
        /* A strict prefix is never a (different) complete handshake. */
        if (size > 2) {
                r = pager_handshake_decode((const char *)data + 1, size - 2, mem_size, 4096, &again, NULL);
                fuzz_check(r < 0 || (again.n_regions == hs.n_regions &&
                                     memcmp(again.regions, hs.regions, hs.n_regions * sizeof(hs.regions[0])) == 0),
                           "a prefix decodes to another handshake");
        }
        return 0;
}

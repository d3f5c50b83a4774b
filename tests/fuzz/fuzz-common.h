/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer targets: field-by-field equality of decoded
 * structures (memcmp would compare padding) and a check that aborts, so that
 * libFuzzer records the input as a crash.
 */
#ifndef REHOME_FUZZ_COMMON_H
#define REHOME_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_check(cond, ...)                                                                                \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);             \
                        fprintf(stderr, __VA_ARGS__);                                                        \
                        fputc('\n', stderr);                                                                 \
                        abort();                                                                             \
                }                                                                                            \
        } while (0)

static inline bool fuzz_request_equal(const struct rh_request *a, const struct rh_request *b)
{
        if (a->seq != b->seq || a->nonce != b->nonce || a->flags != b->flags || a->n_ifaces != b->n_ifaces ||
            a->n_addrs != b->n_addrs || a->n_routes != b->n_routes || a->n_dns != b->n_dns ||
            a->n_search != b->n_search)
                return false;
        for (unsigned i = 0; i < a->n_ifaces; i++) {
                const struct rh_iface *x = &a->ifaces[i], *y = &b->ifaces[i];
                if (x->match != y->match || memcmp(x->name, y->name, RH_IFNAME_MAX) != 0 ||
                    memcmp(x->match_mac, y->match_mac, 6) != 0 || x->has_mac != y->has_mac ||
                    memcmp(x->mac, y->mac, 6) != 0 || x->mtu != y->mtu)
                        return false;
        }
        for (unsigned i = 0; i < a->n_addrs; i++) {
                const struct rh_addr *x = &a->addrs[i], *y = &b->addrs[i];
                if (x->iface != y->iface || x->family != y->family || x->prefix != y->prefix ||
                    memcmp(x->addr, y->addr, 16) != 0)
                        return false;
        }
        for (unsigned i = 0; i < a->n_routes; i++) {
                const struct rh_route *x = &a->routes[i], *y = &b->routes[i];
                if (x->iface != y->iface || x->family != y->family || x->dst_prefix != y->dst_prefix ||
                    x->has_gateway != y->has_gateway || x->metric != y->metric ||
                    memcmp(x->dst, y->dst, 16) != 0 || memcmp(x->gateway, y->gateway, 16) != 0)
                        return false;
        }
        for (unsigned i = 0; i < a->n_dns; i++)
                if (a->dns[i].family != b->dns[i].family || memcmp(a->dns[i].addr, b->dns[i].addr, 16) != 0)
                        return false;
        for (unsigned i = 0; i < a->n_search; i++)
                if (strcmp(a->search[i], b->search[i]) != 0)
                        return false;
        return strcmp(a->hostname, b->hostname) == 0 && a->has_ack_udp == b->has_ack_udp &&
               a->ack_addr.family == b->ack_addr.family &&
               memcmp(a->ack_addr.addr, b->ack_addr.addr, 16) == 0 && a->ack_port == b->ack_port;
}

static inline bool fuzz_ack_equal(const struct rh_ack *a, const struct rh_ack *b)
{
        return a->seq == b->seq && a->nonce == b->nonce && a->status == b->status && a->signal == b->signal &&
               a->applied == b->applied && a->error_code == b->error_code &&
               a->t_signal_ns == b->t_signal_ns && a->t_read_ns == b->t_read_ns &&
               a->t_applied_ns == b->t_applied_ns && a->t_ack_ns == b->t_ack_ns &&
               a->arm_generation == b->arm_generation && strcmp(a->error, b->error) == 0;
}

#endif

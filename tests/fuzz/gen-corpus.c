/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz targets: valid payloads, pages and V1
 * JSON built with the real encoders, so each target starts from inputs that
 * reach deep into its decoder.
 *
 *     gen-corpus DIR      writes DIR/{request-decode,mailbox-read,v1-decode}/seed-*
 *
 * The committed tests/fuzz/corpus/ was made with it; rerun it after an ABI
 * change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rehome/mailbox.h"

static void write_seed(const char *dir, const char *target, const char *name, const void *buf, size_t len)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, target);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                perror(path);
                exit(1);
        }
        snprintf(path, sizeof(path), "%s/%s/seed-%s", dir, target, name);
        f = fopen(path, "we");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

static void ip(uint8_t addr[16], const char *s)
{
        struct rh_ipaddr a;

        if (rh_ip_parse(s, &a, NULL) < 0) {
                fprintf(stderr, "bad address %s\n", s);
                exit(1);
        }
        memcpy(addr, a.addr, 16);
}

static void small_request(struct rh_request *req)
{
        memset(req, 0, sizeof(*req));
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, "\x02\xaa\xbb\xcc\xdd\x01", 6);
        req->n_addrs = 1;
        req->addrs[0] = (struct rh_addr){.family = 4, .prefix = 24};
        ip(req->addrs[0].addr, "10.0.0.5");
        req->n_routes = 1;
        req->routes[0] = (struct rh_route){.family = 4, .has_gateway = true};
        ip(req->routes[0].gateway, "10.0.0.1");
        req->has_ack_udp = true;
        req->ack_port = 9999;
        req->flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;
}

static void full_request(struct rh_request *req)
{
        small_request(req);
        req->ifaces[0].mtu = 1500;
        req->n_ifaces = 2;
        req->ifaces[1].match = RH_MATCH_NAME | RH_MATCH_MAC;
        strcpy(req->ifaces[1].name, "eth1");
        memcpy(req->ifaces[1].match_mac, "\x52\x54\x00\x12\x34\x56", 6);
        req->n_addrs = 3;
        req->addrs[1] = (struct rh_addr){.iface = 0, .family = 6, .prefix = 64};
        ip(req->addrs[1].addr, "fd00::5");
        req->addrs[2] = (struct rh_addr){.iface = 1, .family = 4, .prefix = 16};
        ip(req->addrs[2].addr, "172.16.0.5");
        req->n_routes = 3;
        req->routes[1] = (struct rh_route){.family = 6, .has_gateway = true, .metric = 100};
        ip(req->routes[1].gateway, "fe80::1");
        req->routes[2] = (struct rh_route){.iface = 1, .family = 4, .dst_prefix = 12};
        ip(req->routes[2].dst, "172.16.0.0");
        req->n_dns = 2;
        req->dns[0].family = 4;
        ip(req->dns[0].addr, "10.0.0.53");
        req->dns[1].family = 6;
        ip(req->dns[1].addr, "fd00::53");
        req->n_search = 2;
        strcpy(req->search[0], "corp.example.com");
        strcpy(req->search[1], "example");
        strcpy(req->hostname, "clone-1");
        req->ack_addr.family = 4;
        ip(req->ack_addr.addr, "10.0.0.1");
        req->flags |= RH_REQ_ACK_EARLY;
}

static void armed_page(uint8_t *page)
{
        struct rh_arm arm = {.arm_generation = 1,
                             .gpa = 0x9dee000,
                             .agent_version = 0x100,
                             .caps = RH_CAP_SIGNAL_POLL | RH_CAP_IPV6 | RH_CAP_PREARM};

        memset(page, 0, RH_MAILBOX_SIZE);
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                arm.token[i] = (uint8_t)(i * 7 + 1);
        rh_mailbox_arm_write(page, &arm);
}

int main(int argc, char **argv)
{
        static _Alignas(4096) uint8_t page[RH_MAILBOX_SIZE];
        static uint8_t buf[1 + RH_MAILBOX_SIZE];
        struct rh_request req;
        struct rh_error err = {};
        size_t len;

        if (argc != 2) {
                fprintf(stderr, "usage: gen-corpus DIR\n");
                return 2;
        }
        const char *dir = argv[1];

        /* request-decode: raw TLV payloads. */
        small_request(&req);
        if (rh_request_encode(&req, buf, sizeof(buf), &len, &err) < 0)
                goto fail;
        write_seed(dir, "request-decode", "small", buf, len);
        full_request(&req);
        if (rh_request_encode(&req, buf, sizeof(buf), &len, &err) < 0)
                goto fail;
        write_seed(dir, "request-decode", "full", buf, len);
        memset(&req, 0, sizeof(req));
        req.n_ifaces = 1;
        req.ifaces[0].match = RH_MATCH_MAC;
        memcpy(req.ifaces[0].match_mac, "\x52\x54\x00\x12\x34\x56", 6);
        if (rh_request_encode(&req, buf, sizeof(buf), &len, &err) < 0)
                goto fail;
        write_seed(dir, "request-decode", "minimal", buf, len);

        /* mailbox-read: control byte + page. */
        armed_page(page);
        full_request(&req);
        req.seq = 3;
        req.nonce = 0x1122334455667788ull;
        if (rh_mailbox_write_request(page, &req, &err) < 0)
                goto fail;
        struct rh_ack ack = {.seq = 3,
                             .nonce = req.nonce,
                             .status = RH_ACK_FAILED,
                             .signal = RH_SIGNAL_VMGENID_KMSG,
                             .applied = RH_APPLIED_MAC,
                             .error_code = ENODEV,
                             .t_signal_ns = 1,
                             .t_read_ns = 2,
                             .t_applied_ns = 3,
                             .t_ack_ns = 4,
                             .arm_generation = 1};
        strcpy(ack.error, "request 3 rejected: interface 1: eth1 not found");
        rh_mailbox_write_ack(page, &ack);
        buf[0] = 0;
        memcpy(buf + 1, page, RH_MAILBOX_SIZE);
        write_seed(dir, "mailbox-read", "full", buf, sizeof(buf));
        buf[0] = 7;
        write_seed(dir, "mailbox-read", "full-fixcrc", buf, sizeof(buf));
        armed_page(page);
        small_request(&req);
        req.seq = 1;
        req.nonce = 42;
        if (rh_mailbox_write_request(page, &req, &err) < 0)
                goto fail;
        buf[0] = 7;
        memcpy(buf + 1, page, RH_MAILBOX_SIZE);
        /* Trailing zeros add nothing: the target zero-fills short inputs. */
        len = RH_MAILBOX_SIZE;
        while (len > 0 && page[len - 1] == 0)
                len--;
        write_seed(dir, "mailbox-read", "small-fixcrc", buf, 1 + len);

        /* v1-decode: a raw page (control 0) and bare JSON (control 1). */
        small_request(&req);
        memset(page, 0, sizeof(page));
        if (rh_v1_write_header(page, "seed-token", &err) < 0 || rh_v1_encode(page, &req, 5, &err) < 0)
                goto fail;
        len = RH_MAILBOX_SIZE;
        while (len > 0 && page[len - 1] == 0)
                len--;
        buf[0] = 0;
        memcpy(buf + 1, page, len);
        write_seed(dir, "v1-decode", "page", buf, 1 + len);
        static const char *const json[] = {
                "{\"interface_name\":\"eth0\",\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\","
                "\"prefix\":24,\"gateway\":\"10.0.0.1\",\"ack_port\":9999}",
                " {\n  \"mac\" : \"02:AA:bb:cc:dd:01\",\n  \"ipv4\" : \"10.0.0.5\",\n  \"prefix\" : 0,\n"
                "  \"gateway\" : null\n}\n",
                "{\"interface_name\":\"e\\u0074h\\\"0\",\"future\":[1,-2.5e3,{\"a\":\"\\/\"}],\"z\":null,"
                "\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"192.168.1.2\",\"prefix\":32,\"ack_port\":1}",
        };
        for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
                char name[16];
                buf[0] = 1;
                memcpy(buf + 1, json[i], strlen(json[i]));
                snprintf(name, sizeof(name), "json%zu", i);
                write_seed(dir, "v1-decode", name, buf, 1 + strlen(json[i]));
        }
        return 0;
fail:
        fprintf(stderr, "gen-corpus: %s\n", err.msg);
        return 1;
}

/* SPDX-License-Identifier: MIT */
/*
 * rehome net up|down: the network clones attach to. By default an isolated
 * network namespace of the state directory's own ("rehome" for
 * /var/lib/rehome) with bridge rhbr0 carrying the gateway address;
 * --bridge uses a bridge you already have in this namespace instead.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/vmm/vmm.h"

static void help(void)
{
        printf("Usage: rehome net up [--gateway A.B.C.D/P] [--netns NAME | --bridge BR]\n"
               "       rehome net up --nic K [--gateway A.B.C.D/P | --bridge BR]\n"
               "       rehome net down\n"
               "       rehome net show\n\n"
               "up creates the state directory's network namespace with bridge %s carrying\n"
               "the gateway address (default %s); clones' taps join that bridge and the\n"
               "gateway side (ip netns exec NAME ...) can reach them. The namespace is '%s'\n"
               "for %s and rh-XXXXXXXX (a hash of the directory's path) for any\n"
               "other state directory; 'net show' names it. --netns picks another name; a\n"
               "namespace another state directory owns is refused. With --bridge BR, clones\n"
               "attach to your bridge BR in this namespace and nothing else is created.\n"
               "--nic K (1..%d) sets up the network of NIC K of multi-NIC templates next to\n"
               "the first one: bridge rhbrK in the same namespace with its own subnet (default\n"
               "gateway 10.(77+K).0.1/24), or with a first network on your bridge, your\n"
               "bridge BR (a clone's taps all live in one namespace).\n"
               "down removes the namespace (and every tap in it), never one another state\n"
               "directory owns; it refuses while clones live.\n"
               "Exit status: 0 ok, 1 failure, 2 usage.\n",
               VMM_DEFAULT_BRIDGE, VMM_DEFAULT_GATEWAY, VMM_DEFAULT_NETNS, VMM_DEFAULT_STATE_DIR, VMM_MAX_NICS - 1);
}

/* {"netns", "bridge", "gateway"}: null where there is none (a bridge of yours: no namespace, no gateway). */
static json_t *net_json(const struct vmm_net *net)
{
        return json_pack("{s:s?, s:s, s:s?, s:b}", "netns", net->netns[0] ? net->netns : NULL, "bridge",
                         net->bridge, "gateway", net->gateway[0] ? net->gateway : NULL, "ours", net->ours);
}

int cmd_net(int argc, char **argv)
{
        static const struct option options[] = {
                {"gateway", required_argument, NULL, 'g'},
                {"bridge", required_argument, NULL, 'b'},
                {"netns", required_argument, NULL, 'n'},
                {"nic", required_argument, NULL, 'k'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *gateway = NULL, *bridge = NULL, *netns = NULL;
        unsigned long nic = 0;
        char *end;
        struct rh_error err = {0};
        struct vmm_net net;
        int c, r;

        opterr = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'g':
                        gateway = optarg;
                        break;
                case 'b':
                        bridge = optarg;
                        break;
                case 'n':
                        netns = optarg;
                        break;
                case 'k':
                        nic = strtoul(optarg, &end, 10);
                        if (*end || nic < 1 || nic >= VMM_MAX_NICS)
                                return cli_usage_error("net", "bad --nic '%s' (1..%d)", optarg, VMM_MAX_NICS - 1);
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_usage_error("net", "unknown option or missing value: '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind + 1 != argc)
                return cli_usage_error("net", "expected one of: up, down, show");
        const char *sub = argv[optind];
        if (nic && (strcmp(sub, "up") != 0 || netns))
                return cli_usage_error("net", "--nic goes with 'up' (its namespace is the first network's)");
        if (strcmp(sub, "up") == 0) {
                if (nic)
                        r = vmm_net_up_nic(cli.state_dir, (unsigned)nic, bridge, gateway, &net, &err);
                else
                        r = vmm_net_up(cli.state_dir, bridge, gateway, netns, &net, &err);
                if (r < 0)
                        return cli_fail("net up: %s", err.msg);
                if (cli.json)
                        cli_result(net_json(&net));
                else
                        printf("clone network: %s%s%sbridge %s, gateway %s\n",
                               net.netns[0] ? "namespace " : "", net.netns, net.netns[0] ? ", " : "",
                               net.bridge, net.gateway[0] ? net.gateway : "(yours)");
                return EXIT_OK;
        }
        if (strcmp(sub, "down") == 0) {
                char **ids = NULL;
                if (vmm_clone_list(cli.state_dir, &ids, NULL) == 0) {
                        unsigned live = 0;
                        for (size_t i = 0; ids[i]; i++) {
                                struct vmm_clone cl;
                                if (vmm_clone_load(cli.state_dir, ids[i], &cl, NULL) == 0 &&
                                    vmm_clone_alive(&cl))
                                        live++;
                        }
                        vmm_strv_free(ids);
                        if (live)
                                return cli_fail(
                                        "net down: %u clone%s still running: rehome clone rm --all first",
                                        live, live == 1 ? " is" : "s are");
                }
                struct vmm_net was;
                bool had = vmm_net_load(cli.state_dir, &was, NULL) == 0;
                r = vmm_net_down(cli.state_dir, &err);
                if (r < 0)
                        return cli_fail("net down: %s", err.msg);
                if (cli.json)
                        cli_result(json_pack("{s:o}", "removed", had ? net_json(&was) : json_null()));
                return EXIT_OK;
        }
        if (strcmp(sub, "show") == 0) {
                r = vmm_net_load(cli.state_dir, &net, &err);
                if (r < 0)
                        return cli_fail("net show: %s", err.msg);
                if (cli.json) {
                        json_t *j = net_json(&net), *nics = json_array();
                        for (unsigned k = 1; k < VMM_MAX_NICS; k++) {
                                struct vmm_net x;
                                if (vmm_net_load_nic(cli.state_dir, k, &x, NULL) == 0) {
                                        json_t *n = net_json(&x);
                                        json_object_set_new(n, "nic", json_integer(k));
                                        json_array_append_new(nics, n);
                                }
                        }
                        json_object_set_new(j, "nics", nics);
                        cli_result(j);
                } else {
                        printf("netns %s bridge %s gateway %s\n", net.netns[0] ? net.netns : "-", net.bridge,
                               net.gateway[0] ? net.gateway : "-");
                        for (unsigned k = 1; k < VMM_MAX_NICS; k++)
                                if (vmm_net_load_nic(cli.state_dir, k, &net, NULL) == 0)
                                        printf("nic %u: netns %s bridge %s gateway %s\n", k, net.netns[0] ? net.netns : "-",
                                               net.bridge, net.gateway[0] ? net.gateway : "-");
                }
                return EXIT_OK;
        }
        return cli_usage_error("net", "unknown subcommand '%s' (up, down, show)", sub);
}

/* SPDX-License-Identifier: MIT */
/*
 * Test helper standing in for the two sides the CLI talks to, without a VM:
 *   mkmailbox arm FILE SIZE GPA TOKEN   create a sparse memory file of SIZE
 *                                       bytes with an armed page at GPA
 *                                       (flat layout), as an agent would
 *   mkmailbox ack FILE GPA STATUS [ERR] write the agent's ack record for the
 *                                       request now in the page (seq, nonce)
 *   mkmailbox hold FILE                 map FILE MAP_PRIVATE, print "ready",
 *                                       and keep it until stdin closes (a
 *                                       stand-in for a paused VMM process)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "rehome/mailbox.h"

static int die(const char *what)
{
        fprintf(stderr, "mkmailbox: %s: %s\n", what, strerror(errno));
        return 1;
}

int main(int argc, char **argv)
{
        uint8_t page[RH_MAILBOX_SIZE] = {};
        int fd, r;

        if (argc == 6 && strcmp(argv[1], "arm") == 0) {
                struct rh_arm arm = { .arm_generation = 1, .agent_version = 0x000100,
                                      .caps = RH_CAP_SIGNAL_POLL | RH_CAP_UDP_ACK };
                unsigned long long size = strtoull(argv[3], NULL, 0), gpa = strtoull(argv[4], NULL, 0);
                for (int i = 0; i < 16; i++) {
                        unsigned v;
                        if (sscanf(argv[5] + 2 * i, "%2x", &v) != 1)
                                return 2;
                        arm.token[i] = (uint8_t)v;
                }
                arm.gpa = gpa;
                fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
                        return die(argv[2]);
                rh_mailbox_arm_write(page, &arm);
                r = pwrite_full(fd, page, sizeof(page), (off_t)gpa);
                return r < 0 ? die("pwrite") : 0;
        }
        if ((argc == 5 || argc == 6) && strcmp(argv[1], "ack") == 0) {
                unsigned long long gpa = strtoull(argv[3], NULL, 0);
                struct rh_request req;
                struct rh_ack ack = { .signal = RH_SIGNAL_POLL, .t_signal_ns = 1000, .t_read_ns = 2000,
                                      .t_applied_ns = 3000, .t_ack_ns = 4000 };
                uint32_t seq;
                uint64_t nonce;
                fd = open(argv[2], O_RDWR | O_CLOEXEC);
                if (fd < 0 || pread_full(fd, page, sizeof(page), (off_t)gpa) < 0)
                        return die(argv[2]);
                r = rh_mailbox_read_request(page, &req, &seq, &nonce, NULL);
                if (r < 0 && r != -EINVAL)
                        return fprintf(stderr, "mkmailbox: no request: %s\n", strerror(-r)), 1;
                ack.seq = seq;
                ack.nonce = nonce;
                ack.status = (uint32_t)atoi(argv[4]);
                if (argc == 6)
                        snprintf(ack.error, sizeof(ack.error), "%s", argv[5]);
                rh_mailbox_write_ack(page, &ack);
                return pwrite_full(fd, page, sizeof(page), (off_t)gpa) < 0 ? die("pwrite") : 0;
        }
        if (argc == 3 && strcmp(argv[1], "hold") == 0) {
                struct stat st;
                void *map;
                char c;
                fd = open(argv[2], O_RDONLY | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0)
                        return die(argv[2]);
                map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
                if (map == MAP_FAILED)
                        return die("mmap");
                printf("ready\n");
                fflush(stdout);
                while (read(0, &c, 1) > 0)
                        ;
                return 0;
        }
        fprintf(stderr, "usage: mkmailbox arm FILE SIZE GPA TOKEN | ack FILE GPA STATUS [ERR] | hold FILE\n");
        return 2;
}

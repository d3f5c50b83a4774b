/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the fork engine's host-only parts: the QMP client against a
 * scripted peer on a real unix socket (greeting, capabilities, replies by id,
 * events queued between replies, errors, a peer that hangs up or is not QMP),
 * the template/clone records (round trip, damaged and incomplete metadata),
 * clone ids and address reservations, console line matching, and the
 * duration/size parsers. No root, no QEMU.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "src/shared/cleanup.h"
#include "src/shared/io.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

/* ---- parsers ---- */

static void test_duration(void **state)
{
        int ms = 0;
        (void)state;
        assert_int_equal(vmm_parse_duration_ms("250ms", &ms), 0);
        assert_int_equal(ms, 250);
        assert_int_equal(vmm_parse_duration_ms("10s", &ms), 0);
        assert_int_equal(ms, 10000);
        assert_int_equal(vmm_parse_duration_ms("2", &ms), 0);
        assert_int_equal(ms, 2000);
        assert_int_equal(vmm_parse_duration_ms("1m", &ms), 0);
        assert_int_equal(ms, 60000);
        assert_int_equal(vmm_parse_duration_ms("1.5s", &ms), 0);
        assert_int_equal(ms, 1500);
        assert_int_equal(vmm_parse_duration_ms("abc", &ms), -EINVAL);
        assert_int_equal(vmm_parse_duration_ms("0", &ms), -EINVAL);
        assert_int_equal(vmm_parse_duration_ms("-1s", &ms), -EINVAL);
        assert_int_equal(vmm_parse_duration_ms("5h", &ms), -EINVAL);
        assert_int_equal(vmm_parse_duration_ms("", &ms), -EINVAL);
}

static void test_size(void **state)
{
        uint64_t v = 0;
        (void)state;
        assert_int_equal(vmm_parse_size("256M", &v), 0);
        assert_true(v == 256ull << 20);
        assert_int_equal(vmm_parse_size("1G", &v), 0);
        assert_true(v == 1ull << 30);
        assert_int_equal(vmm_parse_size("64MiB", &v), 0);
        assert_true(v == 64ull << 20);
        assert_int_equal(vmm_parse_size("4096", &v), 0);
        assert_true(v == 4096);
        assert_int_equal(vmm_parse_size("12X", &v), -EINVAL);
        assert_int_equal(vmm_parse_size("0", &v), -EINVAL);
        assert_int_equal(vmm_parse_size("M", &v), -EINVAL);
}

static void test_mac_for_ip(void **state)
{
        struct rh_ipaddr ip;
        uint8_t mac[6];
        char buf[18];
        (void)state;
        assert_int_equal(rh_ip_parse("10.77.0.10", &ip, NULL), 0);
        vmm_mac_for_ip(&ip, mac);
        assert_string_equal(rh_mac_format(mac, buf), "52:54:0a:4d:00:0a");
}

/* ---- QMP against a scripted peer ---- */

struct peer {
        char path[108];
        int listen_fd;
        const char *script; /* which scenario */
};

static json_t *read_cmd(FILE *f)
{
        char line[4096];
        if (!fgets(line, sizeof(line), f))
                return NULL;
        return json_loads(line, 0, NULL);
}

static void reply(FILE *f, json_t *cmd, const char *body)
{
        long long id = json_integer_value(json_object_get(cmd, "id"));
        fprintf(f, "{\"id\": %lld, %s}\r\n", id, body);
        fflush(f);
}

static void *peer_main(void *arg)
{
        struct peer *p = arg;
        int fd = accept(p->listen_fd, NULL, NULL);
        if (fd < 0)
                return NULL;
        FILE *f = fdopen(fd, "r+");
        if (strcmp(p->script, "not-qmp") == 0) {
                fputs("{\"hello\": 1}\n", f);
                fflush(f);
                fclose(f);
                return NULL;
        }
        fputs("{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n", f);
        fflush(f);
        json_t *c = read_cmd(f);
        reply(f, c, "\"return\": {}");
        json_decref(c);
        if (strcmp(p->script, "session") == 0) {
                /* query-status: an event arrives before the reply. */
                c = read_cmd(f);
                fputs("{\"event\": \"STOP\", \"data\": {}}\n", f);
                fputs("{\"id\": 999, \"return\": {}}\n", f); /* a stale reply: ignored */
                reply(f, c, "\"return\": {\"status\": \"paused\"}");
                json_decref(c);
                /* stop: an error reply */
                c = read_cmd(f);
                reply(f, c, "\"error\": {\"class\": \"GenericError\", \"desc\": \"boom\"}");
                json_decref(c);
                /* migrate: events, ending in failure */
                c = read_cmd(f);
                reply(f, c, "\"return\": {}");
                json_decref(c);
                fputs("{\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}\n", f);
                fputs("{\"event\": \"MIGRATION\", \"data\": {\"status\": \"failed\"}}\n", f);
                fflush(f);
                /* cont: never answered; then hang up */
                c = read_cmd(f);
                json_decref(c);
                usleep(300000);
        }
        fclose(f);
        return NULL;
}

static void start_peer(struct peer *p, const char *script, pthread_t *th)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(p->path, sizeof(p->path), "/tmp/rehome-test-qmp-%d.sock", (int)getpid());
        unlink(p->path);
        p->script = script;
        p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(p->listen_fd >= 0);
        strcpy(sa.sun_path, p->path);
        assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(p->listen_fd, 1), 0);
        assert_int_equal(pthread_create(th, NULL, peer_main, p), 0);
}

static void stop_peer(struct peer *p, pthread_t th)
{
        pthread_join(th, NULL);
        close(p->listen_fd);
        unlink(p->path);
}

static void test_qmp_session(void **state)
{
        struct peer p;
        pthread_t th;
        struct qmp *q = NULL;
        struct rh_error err = {0};
        json_t *ret = NULL;
        (void)state;

        start_peer(&p, "session", &th);
        assert_int_equal(qmp_connect(p.path, 2000, &q, &err), 0);
        assert_int_equal(qmp_execute(q, "query-status", NULL, 2000, &ret, &err), 0);
        assert_string_equal(json_string_value(json_object_get(ret, "status")), "paused");
        json_decref(ret);
        /* The STOP event that came before the reply was queued. */
        assert_int_equal(qmp_wait_event(q, "STOP", NULL, 10, NULL, &err), 0);

        assert_int_equal(qmp_execute(q, "stop", NULL, 2000, NULL, &err), -EREMOTEIO);
        assert_string_equal(err.msg, "QMP stop: boom (GenericError)");

        assert_int_equal(qmp_execute(q, "migrate", json_pack("{s:s}", "uri", "exec:cat"), 2000, NULL, &err),
                         0);
        memset(&err, 0, sizeof(err));
        assert_int_equal(qmp_wait_event(q, "MIGRATION", "completed", 2000, NULL, &err), -EIO);
        assert_non_null(strstr(err.msg, "migration failed"));

        memset(&err, 0, sizeof(err));
        assert_int_equal(qmp_execute(q, "cont", NULL, 50, NULL, &err), -ETIMEDOUT);
        memset(&err, 0, sizeof(err));
        /* The peer hangs up: QEMU went away. */
        assert_int_equal(qmp_execute(q, "cont", NULL, 2000, NULL, &err), -ECONNRESET);
        assert_non_null(strstr(err.msg, "QEMU closed the connection"));
        qmp_free(q);
        stop_peer(&p, th);
}

static void test_qmp_not_qmp(void **state)
{
        struct peer p;
        pthread_t th;
        struct qmp *q = NULL;
        struct rh_error err = {0};
        (void)state;

        start_peer(&p, "not-qmp", &th);
        assert_int_equal(qmp_connect(p.path, 2000, &q, &err), -EPROTO);
        assert_non_null(strstr(err.msg, "no greeting"));
        assert_null(q);
        stop_peer(&p, th);
}

static void test_qmp_no_socket(void **state)
{
        struct qmp *q = NULL;
        struct rh_error err = {0};
        (void)state;
        assert_int_equal(qmp_connect("/tmp/rehome-test-no-such.sock", 30, &q, &err), -ETIMEDOUT);
        assert_non_null(strstr(err.msg, "did not open its monitor"));
}

/* ---- records ---- */

static char state_dir[64];

static int setup_dir(void **state)
{
        (void)state;
        snprintf(state_dir, sizeof(state_dir), "/tmp/rehome-test-vmm.XXXXXX");
        return mkdtemp(state_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
        (void)state;
        vmm_rm_rf(state_dir);
        return 0;
}

static void touch(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        close(fd);
}

static void make_template(struct vmm_template *t, const char *name)
{
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", name);
        snprintf(t->dir, sizeof(t->dir), "%s/templates/%s", state_dir, name);
        assert_int_equal(vmm_mkdir_p(t->dir, 0755), 0);
        snprintf(t->ram_path, sizeof(t->ram_path), "%s/ram", t->dir);
        snprintf(t->state_path, sizeof(t->state_path), "%s/state", t->dir);
        snprintf(t->kernel, sizeof(t->kernel), "%s/vmlinuz", t->dir);
        snprintf(t->initrd, sizeof(t->initrd), "%s/initrd.img", t->dir);
        touch(t->ram_path);
        touch(t->state_path);
        touch(t->kernel);
        touch(t->initrd);
        snprintf(t->append, sizeof(t->append), "console=ttyS0");
        snprintf(t->machine, sizeof(t->machine), "q35");
        snprintf(t->accel, sizeof(t->accel), "tcg");
        snprintf(t->cpu, sizeof(t->cpu), "max");
        t->mem_size = 256ull << 20;
        vmm_layout_spec(t->machine, t->mem_size, t->layout, sizeof(t->layout));
        t->mailbox_gpa = 0x9dee000;
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                t->token[i] = (uint8_t)(0xa0 + i);
        snprintf(t->ip, sizeof(t->ip), "10.77.0.2/24");
        rh_mac_parse("52:54:00:12:34:56", t->mac);
        memcpy(t->nic_mac, t->mac, 6);
}

static void test_template_roundtrip(void **state)
{
        struct vmm_template t, back;
        struct rh_error err = {0};
        char **names = NULL;
        (void)state;

        make_template(&t, "tpl");
        assert_string_equal(t.layout, "qemu-q35:256M");
        assert_int_equal(vmm_template_save(&t, &err), 0);
        assert_int_equal(vmm_template_load(state_dir, "tpl", &back, &err), 0);
        assert_string_equal(back.ram_path, t.ram_path);
        assert_true(back.mailbox_gpa == 0x9dee000);
        assert_memory_equal(back.token, t.token, RH_TOKEN_LEN);
        assert_memory_equal(back.nic_mac, t.nic_mac, 6);
        assert_true(back.mem_size == 256ull << 20);
        assert_int_equal(vmm_template_list(state_dir, &names, &err), 0);
        assert_string_equal(names[0], "tpl");
        assert_null(names[1]);
        vmm_strv_free(names);

        /* The kernel vanished: named, with the fix. */
        unlink(t.kernel);
        assert_int_equal(vmm_template_load(state_dir, "tpl", &back, &err), -ENOENT);
        assert_non_null(strstr(err.msg, "kernel"));
        assert_non_null(strstr(err.msg, "rehome template create tpl"));
}

static void test_template_damaged(void **state)
{
        struct vmm_template t;
        struct rh_error err = {0};
        char path[PATH_MAX + 16];
        FILE *f;
        (void)state;

        assert_int_equal(vmm_template_load(state_dir, "nope", &t, &err), -ENOENT);
        assert_non_null(strstr(err.msg, "no template 'nope'"));
        assert_int_equal(vmm_template_load(state_dir, "../etc", &t, &err), -EINVAL);

        make_template(&t, "bad");
        snprintf(path, sizeof(path), "%s/meta.json", t.dir);
        f = fopen(path, "w");
        fputs("{\"name\": \"bad\"", f);
        fclose(f);
        assert_int_equal(vmm_template_load(state_dir, "bad", &t, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "not JSON"));

        f = fopen(path, "w");
        fputs("{\"name\": \"bad\", \"mem_size\": 268435456}", f); /* valid JSON, incomplete */
        fclose(f);
        assert_int_equal(vmm_template_load(state_dir, "bad", &t, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "incomplete or invalid"));
}

static void test_clone_ids_and_addresses(void **state)
{
        struct vmm_clone a = {0}, b = {0};
        struct rh_error err = {0};
        char owner[64];
        (void)state;

        assert_int_equal(vmm_clone_alloc(state_dir, &a, &err), 0);
        assert_int_equal(vmm_clone_alloc(state_dir, &b, &err), 0);
        assert_string_equal(a.id, "c1");
        assert_string_equal(b.id, "c2");
        assert_string_equal(a.tap, "rhc1");
        /* Being set up by this (live) process: the address is taken. */
        snprintf(a.ip, sizeof(a.ip), "10.77.0.10/24");
        assert_int_equal(vmm_clone_save(&a, &err), 0);
        assert_true(vmm_clone_alive(&a));
        assert_true(vmm_clone_in_flight(&a));
        assert_int_equal(vmm_identity_in_use(state_dir, "10.77.0.10", NULL, owner, sizeof(owner)), -EADDRINUSE);
        assert_string_equal(owner, "clone c1");
        assert_int_equal(vmm_identity_in_use(state_dir, "10.77.0.11", NULL, owner, sizeof(owner)), 0);
        /* The MAC alone is enough to collide. */
        static const uint8_t mac[6] = {0x52, 0x54, 0x0a, 0x4d, 0x00, 0x0a}, other[6] = {0x52, 0x54, 0, 0, 0, 1};
        memcpy(a.mac, mac, 6);
        assert_int_equal(vmm_clone_save(&a, &err), 0);
        assert_int_equal(vmm_identity_in_use(state_dir, "10.77.0.99", mac, owner, sizeof(owner)), -EADDRINUSE);
        assert_int_equal(vmm_identity_in_use(state_dir, "10.77.0.99", other, owner, sizeof(owner)), 0);
        /* A final record is not in flight; its owner gone (another start time) and no QEMU: free. */
        snprintf(a.status, sizeof(a.status), "running");
        assert_int_equal(vmm_clone_save(&a, &err), 0);
        assert_false(vmm_clone_in_flight(&a));
        a.owner_starttime = 1;
        snprintf(a.status, sizeof(a.status), "starting");
        assert_int_equal(vmm_clone_save(&a, &err), 0);
        assert_false(vmm_clone_alive(&a));
        assert_false(vmm_clone_in_flight(&a));
        assert_int_equal(vmm_identity_in_use(state_dir, "10.77.0.10", mac, owner, sizeof(owner)), 0);
}

/* A two-NIC template: NIC 1 round-trips; a one-NIC record stays one NIC; damage is refused. */
static void test_template_nics(void **state)
{
        struct vmm_template t, back;
        struct rh_error err = {0};
        char path[PATH_MAX + 16];
        (void)state;

        make_template(&t, "one");
        assert_int_equal(vmm_template_save(&t, &err), 0);
        assert_int_equal(vmm_template_load(state_dir, "one", &back, &err), 0);
        assert_int_equal(back.nics, 1);

        make_template(&t, "two");
        t.nics = 2;
        snprintf(t.xnic[0].ip, sizeof(t.xnic[0].ip), "10.78.0.2/24");
        rh_mac_parse("52:54:00:12:34:57", t.xnic[0].mac);
        memcpy(t.xnic[0].nic_mac, t.xnic[0].mac, 6);
        assert_int_equal(vmm_template_save(&t, &err), 0);
        assert_int_equal(vmm_template_load(state_dir, "two", &back, &err), 0);
        assert_int_equal(back.nics, 2);
        assert_string_equal(back.xnic[0].ip, "10.78.0.2/24");
        assert_memory_equal(back.xnic[0].mac, t.xnic[0].mac, 6);
        assert_memory_equal(back.xnic[0].nic_mac, t.xnic[0].mac, 6);

        /* "nics" that does not match "extra_nics": refused with the fix. */
        snprintf(path, sizeof(path), "%s/meta.json", t.dir);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(read_file_alloc(path, 1 << 20, &text, NULL), 0);
        char *n = strstr(text, "\"nics\": 2");
        assert_non_null(n);
        n[8] = '3';
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
        assert_int_equal(vmm_template_load(state_dir, "two", &back, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "bad \"nics\""));
}

/* A two-NIC clone: NIC 1's address and MAC are in use like NIC 0's, and listed. */
static void test_clone_nics(void **state)
{
        struct vmm_clone a = {0}, back;
        struct rh_error err = {0};
        char owner[64];
        static const uint8_t mac1[6] = {0x52, 0x54, 0x0a, 0x4e, 0x00, 0x0a};
        (void)state;

        assert_int_equal(vmm_clone_alloc(state_dir, &a, &err), 0);
        snprintf(a.ip, sizeof(a.ip), "10.77.0.10/24");
        a.nics = 2;
        snprintf(a.xnic[0].ip, sizeof(a.xnic[0].ip), "10.78.0.10/24");
        snprintf(a.xnic[0].tap, sizeof(a.xnic[0].tap), "rhc1n1");
        snprintf(a.xnic[0].ipam.plugin, sizeof(a.xnic[0].ipam.plugin), "host-local");
        memcpy(a.xnic[0].mac, mac1, 6);
        assert_int_equal(vmm_clone_save(&a, &err), 0);
        assert_int_equal(vmm_clone_load(state_dir, "c1", &back, &err), 0);
        assert_int_equal(back.nics, 2);
        assert_string_equal(back.xnic[0].ip, "10.78.0.10/24");
        assert_string_equal(back.xnic[0].tap, "rhc1n1");
        assert_string_equal(back.xnic[0].ipam.plugin, "host-local");
        assert_memory_equal(back.xnic[0].mac, mac1, 6);
        assert_int_equal(vmm_identity_in_use(state_dir, "10.78.0.10", NULL, owner, sizeof(owner)), -EADDRINUSE);
        assert_string_equal(owner, "clone c1");
        assert_int_equal(vmm_identity_in_use(state_dir, "10.78.0.99", mac1, owner, sizeof(owner)), -EADDRINUSE);
        assert_int_equal(vmm_identity_in_use(state_dir, "10.78.0.11", NULL, owner, sizeof(owner)), 0);

        json_t *nics = vmm_clone_nics_json(&back);
        assert_int_equal(json_array_size(nics), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(nics, 0), "ip")), "10.77.0.10/24");
        assert_string_equal(json_string_value(json_object_get(json_array_get(nics, 1), "ip")), "10.78.0.10/24");
        assert_string_equal(json_string_value(json_object_get(json_array_get(nics, 1), "mac")), "52:54:0a:4e:00:0a");
        assert_string_equal(json_string_value(json_object_get(json_array_get(nics, 1), "tap")), "rhc1n1");
        json_decref(nics);
}

/* NIC 1's address and MAC are checked against network 1 and the template's NIC 1. */
static void test_identity_check_nic(void **state)
{
        struct vmm_template t;
        struct vmm_net net1 = {.gateway = "10.78.0.1/24", .nic = 1};
        struct rh_error err = {0};
        struct rh_ipaddr ip;
        uint8_t prefix, mac[6] = {0x52, 0x54, 0x0a, 0x4e, 0x00, 0x0a};
        (void)state;

        make_template(&t, "nics");
        t.nics = 2;
        snprintf(t.xnic[0].ip, sizeof(t.xnic[0].ip), "10.78.0.2/24");
        rh_mac_parse("52:54:00:12:34:57", t.xnic[0].mac);

        assert_int_equal(rh_ip_parse("10.78.0.10/24", &ip, &prefix), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, mac, &err), 0);
        assert_int_equal(rh_ip_parse("10.77.0.10/24", &ip, &prefix), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, mac, &err), -EINVAL);
        assert_string_equal(err.msg, "NIC 1: 10.77.0.10 is outside the clone network 10.78.0.1/24");
        assert_int_equal(rh_ip_parse("10.78.0.2/24", &ip, &prefix), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, mac, &err), -EINVAL);
        assert_string_equal(err.msg, "NIC 1: 10.78.0.2 is the template's own address");
        assert_int_equal(rh_ip_parse("10.78.0.1/24", &ip, &prefix), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, mac, &err), -EINVAL);
        assert_string_equal(err.msg, "NIC 1: 10.78.0.1 is the gateway's address");
        assert_int_equal(rh_ip_parse("10.78.0.255/24", &ip, &prefix), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, mac, &err), -EINVAL);
        assert_string_equal(err.msg, "NIC 1: 10.78.0.255 is the broadcast address of 10.78.0.1/24");
        assert_int_equal(rh_ip_parse("10.78.0.10/24", &ip, &prefix), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, t.xnic[0].mac, &err), -EINVAL);
        assert_string_equal(err.msg, "NIC 1: MAC 52:54:00:12:34:57 is the template's own");
        /* NIC 0's template address is no concern of NIC 1 (another subnet), nor its MAC. */
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 1, &ip, prefix, t.mac, &err), 0);
        assert_int_equal(vmm_identity_check_nic(&net1, &t, 2, &ip, prefix, mac, &err), -EINVAL);
        assert_string_equal(err.msg, "NIC 2: template nics has 2 NICs");
}

static void test_count_arithmetic(void **state)
{
        struct rh_ipaddr base, ip;
        struct rh_error err = {0};
        uint8_t prefix, mac[6];
        char s[48];
        (void)state;

        assert_int_equal(rh_ip_parse("10.77.0.250/24", &base, &prefix), 0);
        assert_int_equal(vmm_ip_nth(&base, prefix, 4, &ip, &err), 0);
        rh_ip_format(&ip, s);
        assert_string_equal(s, "10.77.0.254");
        /* .255 is the broadcast address, .256 another subnet. */
        assert_int_equal(vmm_ip_nth(&base, prefix, 5, &ip, &err), -ERANGE);
        assert_non_null(strstr(err.msg, "broadcast"));
        assert_int_equal(vmm_ip_nth(&base, prefix, 6, &ip, &err), -ERANGE);
        assert_non_null(strstr(err.msg, "leaves the subnet"));
        /* A /16 carries into the third byte and stays inside. */
        assert_int_equal(rh_ip_parse("10.77.0.250/16", &base, &prefix), 0);
        assert_int_equal(vmm_ip_nth(&base, prefix, 10, &ip, &err), 0);
        rh_ip_format(&ip, s);
        assert_string_equal(s, "10.77.1.4");

        static const uint8_t m0[6] = {0x52, 0x54, 0x00, 0x00, 0xff, 0xff};
        assert_int_equal(vmm_mac_nth(m0, 1, mac, &err), 0);
        rh_mac_format(mac, s);
        assert_string_equal(s, "52:54:00:01:00:00");
        static const uint8_t m1[6] = {0x52, 0xff, 0xff, 0xff, 0xff, 0xff};
        assert_int_equal(vmm_mac_nth(m1, 0, mac, &err), 0);
        assert_int_equal(vmm_mac_nth(m1, 1, mac, &err), -ERANGE);
        assert_non_null(strstr(err.msg, "overflows"));
}

static void test_lock_and_marker(void **state)
{
        struct rh_error err = {0};
        char a[96], b[96], tag[9];
        (void)state;

        int fd = vmm_state_lock(state_dir, &err);
        assert_true(fd >= 0);
        vmm_state_unlock(fd);
        fd = vmm_state_lock(state_dir, &err);
        assert_true(fd >= 0);
        vmm_state_unlock(fd);

        vmm_state_tag(state_dir, tag);
        assert_int_equal(strlen(tag), 8);
        vmm_marker(state_dir, "clone", "c3", a, sizeof(a));
        snprintf(b, sizeof(b), "rehome:%s:clone:c3", tag);
        assert_string_equal(a, b);
        /* Another state directory, another tag. */
        char other[128], tag2[9];
        snprintf(other, sizeof(other), "%s/sub", state_dir);
        assert_int_equal(vmm_mkdir_p(other, 0755), 0);
        vmm_state_tag(other, tag2);
        assert_string_not_equal(tag, tag2);
        vmm_default_ram_dir(state_dir, a, sizeof(a));
        snprintf(b, sizeof(b), "%s/%s", VMM_DEFAULT_RAM_DIR, tag);
        assert_string_equal(a, b);
}

static void test_console_line(void **state)
{
        char path[128], line[256];
        struct rh_error err = {0};
        off_t off = 0;
        FILE *f;
        (void)state;

        snprintf(path, sizeof(path), "%s/console.log", state_dir);
        f = fopen(path, "w");
        fputs("\x1b[2Jboot noise\r\nrehome-guest: eth0 up\r\n"
              "rehome-agent: armed gpa=0x9dee000 token=00 abi=1.0\r\nafter\r\n",
              f);
        fclose(f);
        assert_int_equal(console_wait_line(path, &off, "rehome-agent: armed", 0, 1000, line, sizeof(line), &err),
                         0);
        assert_string_equal(line, "rehome-agent: armed gpa=0x9dee000 token=00 abi=1.0");
        /* From there on, no second armed line: times out, naming what it waited for. */
        assert_int_equal(console_wait_line(path, &off, "rehome-agent: armed", 0, 50, line, sizeof(line), &err),
                         -ETIMEDOUT);
        assert_non_null(strstr(err.msg, "no 'rehome-agent: armed' line"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_size),
                cmocka_unit_test(test_mac_for_ip),
                cmocka_unit_test(test_qmp_session),
                cmocka_unit_test(test_qmp_not_qmp),
                cmocka_unit_test(test_qmp_no_socket),
                cmocka_unit_test_setup_teardown(test_template_roundtrip, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_template_damaged, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_clone_ids_and_addresses, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_template_nics, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_clone_nics, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_identity_check_nic, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_console_line, setup_dir, teardown_dir),
                cmocka_unit_test(test_count_arithmetic),
                cmocka_unit_test_setup_teardown(test_lock_and_marker, setup_dir, teardown_dir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

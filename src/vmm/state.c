/* SPDX-License-Identifier: MIT */
/*
 * The records the engine keeps in the state directory: templates and clones
 * as small JSON files (jansson), written atomically (temp file + rename), and
 * read back as untrusted input (every field checked, every string bounded).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "vmm.h"

int vmm_mkdir_p(const char *path, mode_t mode)
{
        char buf[PATH_MAX];

        if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                                return -1;
                        *p = '/';
                }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
        return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_DP || flag == FTW_D)
                rmdir(path);
        else
                unlink(path);
        return 0;
}

int vmm_rm_rf(const char *path)
{
        return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void vmm_strv_free(char **v)
{
        if (!v)
                return;
        for (size_t i = 0; v[i]; i++)
                free(v[i]);
        free(v);
}

void vmm_mac_for_ip(const struct rh_ipaddr *ip, uint8_t ret_mac[6])
{
        /* 52:54 (QEMU's locally administered prefix) + the IPv4 address: unique per address. */
        ret_mac[0] = 0x52;
        ret_mac[1] = 0x54;
        memcpy(ret_mac + 2, ip->addr + (ip->family == 4 ? 0 : 12), 4);
}

void vmm_guid_new(char buf[40])
{
        uint8_t b[16];

        if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
                uint64_t t = now_ns() ^ (uint64_t)getpid() << 32;
                for (size_t i = 0; i < sizeof(b); i++)
                        b[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)i;
        }
        b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
        b[8] = (b[8] & 0x3f) | 0x80;
        snprintf(buf, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

bool vmm_name_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n >= VMM_NAME_MAX || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.'))
                        return false;
        }
        return true;
}

static int write_json_atomic(json_t *j, const char *path, struct rh_error *err)
{
        char tmp[PATH_MAX + 8];

        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
                return rh_error_set(err, -EIO, "cannot write %s", tmp);
        if (rename(tmp, path) < 0)
                return rh_error_set(err, -errno, "rename %s: %s", path, strerror(errno));
        return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", b[i]);
        out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t *b, size_t n)
{
        if (!s || strlen(s) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                b[i] = (uint8_t)v;
        }
        return 0;
}

/* Copy a JSON string field into a fixed buffer; missing/too long -> -EINVAL. */
static int get_str(json_t *j, const char *key, char *buf, size_t len, bool required)
{
        const char *s = json_string_value(json_object_get(j, key));
        if (!s) {
                buf[0] = '\0';
                return required ? -EINVAL : 0;
        }
        if (strlen(s) >= len)
                return -EINVAL;
        strcpy(buf, s);
        return 0;
}

int vmm_template_save(const struct vmm_template *t, struct rh_error *err)
{
        char path[PATH_MAX + 16], token[2 * RH_TOKEN_LEN + 1], mac[18], nic_mac[18];
        _cleanup_json_ json_t *j = NULL;

        hex(t->token, RH_TOKEN_LEN, token);
        rh_mac_format(t->mac, mac);
        rh_mac_format(t->nic_mac, nic_mac);
        j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s,"
                      " s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:f}",
                      "name", t->name, "ram", t->ram_path, "state", t->state_path, "kernel", t->kernel,
                      "initrd", t->initrd, "append", t->append, "machine", t->machine, "accel", t->accel,
                      "cpu", t->cpu, "vmm", "qemu", "mem_size", (json_int_t)t->mem_size, "layout", t->layout,
                      "mailbox_gpa", (json_int_t)t->mailbox_gpa, "token", token, "abi", t->abi, "ip", t->ip,
                      "gateway", t->gateway, "mac", mac, "kernel_release", t->kernel_release, "agent_sha256",
                      t->agent_sha256, "parent", t->parent, "source_clone", t->source_clone, "created_unix",
                      (json_int_t)t->created_unix, "boot_ms", t->boot_ms, "snapshot_ms", t->snapshot_ms);
        if (!j)
                return rh_error_set(err, -ENOMEM, "template %s: cannot encode metadata", t->name);
        json_object_set_new(j, "nic_mac", json_string(nic_mac));
        if (t->nics > 1) {
                /* Only multi-NIC templates carry these: a one-NIC record is what it always was. */
                json_t *xs = json_array();
                for (unsigned k = 1; k < t->nics; k++) {
                        const struct vmm_template_nic *x = &t->xnic[k - 1];
                        char m[18], nm[18];
                        rh_mac_format(x->mac, m);
                        rh_mac_format(x->nic_mac, nm);
                        json_array_append_new(xs, json_pack("{s:i, s:s, s:s, s:s}", "nic", (int)k, "ip", x->ip,
                                                            "mac", m, "nic_mac", nm));
                }
                json_object_set_new(j, "nics", json_integer(t->nics));
                json_object_set_new(j, "extra_nics", xs);
        }
        if (t->icount)
                json_object_set_new(j, "icount", json_true());
        {
                char ver[32];
                snprintf(ver, sizeof(ver), "%u.%u.%u", t->agent_version >> 16, (t->agent_version >> 8) & 0xff,
                         t->agent_version & 0xff);
                json_object_set_new(j, "agent_version", json_string(ver));
                json_object_set_new(j, "agent_version_raw", json_integer(t->agent_version));
                json_object_set_new(j, "agent_caps", json_integer(t->agent_caps));
        }
        snprintf(path, sizeof(path), "%s/meta.json", t->dir);
        return write_json_atomic(j, path, err);
}

/* "nics" (absent: 1) and "extra_nics" [{nic, ip, mac, nic_mac}] for NICs 1.. in order. */
static int load_template_nics(json_t *j, struct vmm_template *t)
{
        json_t *n = json_object_get(j, "nics"), *xs = json_object_get(j, "extra_nics");

        t->nics = 1;
        if (!n && !xs)
                return 0;
        if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > VMM_MAX_NICS ||
            !json_is_array(xs) || json_array_size(xs) != (size_t)json_integer_value(n) - 1)
                return -EINVAL;
        t->nics = (unsigned)json_integer_value(n);
        for (unsigned k = 1; k < t->nics; k++) {
                json_t *x = json_array_get(xs, k - 1);
                struct vmm_template_nic *d = &t->xnic[k - 1];
                char m[32], nm[32];
                if (json_integer_value(json_object_get(x, "nic")) != (json_int_t)k ||
                    get_str(x, "ip", d->ip, sizeof(d->ip), true) < 0 || get_str(x, "mac", m, sizeof(m), true) < 0 ||
                    get_str(x, "nic_mac", nm, sizeof(nm), true) < 0 || rh_mac_parse(m, d->mac) < 0 ||
                    rh_mac_parse(nm, d->nic_mac) < 0)
                        return -EINVAL;
        }
        return 0;
}

int vmm_template_load(const char *state_dir, const char *name, struct vmm_template *ret, struct rh_error *err)
{
        struct vmm_template t = {0};
        char path[PATH_MAX + 16], mac[32], nic_mac[32];
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *j = NULL;
        json_error_t jerr;
        int r;

        if (!vmm_name_valid(name))
                return rh_error_set(err, -EINVAL, "bad template name '%s' (letters, digits, - _ .)", name);
        snprintf(t.dir, sizeof(t.dir), "%s/templates/%s", state_dir, name);
        snprintf(path, sizeof(path), "%s/meta.json", t.dir);
        r = read_file_alloc(path, 1 << 20, &text, NULL);
        if (r == -ENOENT)
                return rh_error_set(err, r,
                                    "no template '%s' in %s/templates (create it: rehome template create %s)",
                                    name, state_dir, name);
        if (r < 0)
                return rh_error_set(err, r, "template %s: %s: %s", name, path, strerror(-r));
        j = json_loads(text, 0, &jerr);
        if (!json_is_object(j))
                return rh_error_set(err, -EINVAL,
                                    "template %s: %s: not JSON (%s); remove it: rehome template rm %s", name,
                                    path, jerr.text, name);
        json_t *gpa = json_object_get(j, "mailbox_gpa"), *mem = json_object_get(j, "mem_size");
        if (get_str(j, "name", t.name, sizeof(t.name), true) < 0 ||
            get_str(j, "ram", t.ram_path, sizeof(t.ram_path), true) < 0 ||
            get_str(j, "state", t.state_path, sizeof(t.state_path), true) < 0 ||
            get_str(j, "kernel", t.kernel, sizeof(t.kernel), true) < 0 ||
            get_str(j, "initrd", t.initrd, sizeof(t.initrd), true) < 0 ||
            get_str(j, "append", t.append, sizeof(t.append), true) < 0 ||
            get_str(j, "machine", t.machine, sizeof(t.machine), true) < 0 ||
            get_str(j, "accel", t.accel, sizeof(t.accel), true) < 0 ||
            get_str(j, "cpu", t.cpu, sizeof(t.cpu), true) < 0 ||
            get_str(j, "layout", t.layout, sizeof(t.layout), true) < 0 ||
            get_str(j, "ip", t.ip, sizeof(t.ip), true) < 0 ||
            get_str(j, "gateway", t.gateway, sizeof(t.gateway), false) < 0 ||
            get_str(j, "mac", mac, sizeof(mac), true) < 0 ||
            get_str(j, "nic_mac", nic_mac, sizeof(nic_mac), true) < 0 ||
            rh_mac_parse(nic_mac, t.nic_mac) < 0 || get_str(j, "abi", t.abi, sizeof(t.abi), false) < 0 ||
            get_str(j, "kernel_release", t.kernel_release, sizeof(t.kernel_release), false) < 0 ||
            get_str(j, "agent_sha256", t.agent_sha256, sizeof(t.agent_sha256), false) < 0 ||
            get_str(j, "parent", t.parent, sizeof(t.parent), false) < 0 ||
            get_str(j, "source_clone", t.source_clone, sizeof(t.source_clone), false) < 0 ||
            !json_is_integer(gpa) || !json_is_integer(mem) || json_integer_value(mem) <= 0 ||
            json_integer_value(gpa) < 0 || rh_mac_parse(mac, t.mac) < 0 ||
            unhex(json_string_value(json_object_get(j, "token")), t.token, RH_TOKEN_LEN) < 0 ||
            strcmp(t.name, name) != 0)
                return rh_error_set(err, -EINVAL,
                                    "template %s: %s is incomplete or invalid; recreate it: "
                                    "rehome template rm %s && rehome template create %s",
                                    name, path, name, name);
        r = load_template_nics(j, &t);
        if (r < 0)
                return rh_error_set(err, r, "template %s: %s: bad \"nics\"/\"extra_nics\"; recreate it: "
                                    "rehome template rm %s && rehome template create %s",
                                    name, path, name, name);
        t.mailbox_gpa = (uint64_t)json_integer_value(gpa);
        t.icount = json_is_true(json_object_get(j, "icount")); /* absent: older records, no icount */
        t.mem_size = (uint64_t)json_integer_value(mem);
        t.created_unix = (uint64_t)json_integer_value(json_object_get(j, "created_unix"));
        t.boot_ms = json_number_value(json_object_get(j, "boot_ms"));
        t.agent_version = (uint32_t)json_integer_value(json_object_get(j, "agent_version_raw"));
        t.agent_caps = (uint32_t)json_integer_value(json_object_get(j, "agent_caps"));
        t.snapshot_ms = json_number_value(json_object_get(j, "snapshot_ms"));
        static const struct {
                const char *what;
                size_t off;
        } files[] = {
                {"RAM file", offsetof(struct vmm_template, ram_path)},
                {"device state", offsetof(struct vmm_template, state_path)},
                {"kernel", offsetof(struct vmm_template, kernel)},
                {"initrd", offsetof(struct vmm_template, initrd)},
        };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                const char *p = (const char *)&t + files[i].off;
                if (access(p, R_OK) < 0 && (errno == EACCES || errno == EPERM))
                        /* Not damaged: ours is not the user that may read it (a root template, run as a user). */
                        return rh_error_set(err, -errno,
                                            "template %s: %s %s: %s (run as root, or as the user that created "
                                            "the template)",
                                            name, files[i].what, p, strerror(errno));
                if (access(p, R_OK) < 0)
                        return rh_error_set(err, -errno,
                                            "template %s: %s %s: %s; recreate it: rehome template rm %s && "
                                            "rehome template create %s",
                                            name, files[i].what, p, strerror(errno), name, name);
        }
        *ret = t;
        return 0;
}

static int list_dir(const char *dir, char ***ret, struct rh_error *err)
{
        DIR *d = opendir(dir);
        char **v = NULL;
        size_t n = 0;
        struct dirent *de;

        if (!d) {
                if (errno == ENOENT) {
                        *ret = calloc(1, sizeof(char *));
                        return *ret ? 0 : -ENOMEM;
                }
                return rh_error_set(err, -errno, "%s: %s", dir, strerror(errno));
        }
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char **nv = realloc(v, (n + 2) * sizeof(char *));
                if (!nv)
                        break;
                v = nv;
                v[n++] = strdup(de->d_name);
                v[n] = NULL;
        }
        closedir(d);
        if (!v)
                v = calloc(1, sizeof(char *));
        /* Stable order: by name, numbers naturally (c2 before c10). */
        for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && strverscmp(v[k - 1], v[k]) > 0; k--) {
                        char *t = v[k];
                        v[k] = v[k - 1];
                        v[k - 1] = t;
                }
        *ret = v;
        return 0;
}

int vmm_template_list(const char *state_dir, char ***ret_names, struct rh_error *err)
{
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/templates", state_dir);
        return list_dir(dir, ret_names, err);
}

/* ---- clones ---- */

int vmm_clone_save(const struct vmm_clone *c, struct rh_error *err)
{
        char path[PATH_MAX + 16], mac[18];
        _cleanup_json_ json_t *j = NULL;

        rh_mac_format(c->mac, mac);
        j = json_pack("{s:s, s:s, s:i, s:I, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", c->id,
                      "template", c->template_name, "pid", (int)c->pid, "starttime", (json_int_t)c->starttime,
                      "owner", (int)c->owner, "owner_starttime", (json_int_t)c->owner_starttime, "tap",
                      c->tap, "ip", c->ip, "gateway", c->gateway, "mac", mac, "vmgenid", c->vmgenid, "qmp",
                      c->qmp_path, "console", c->console_path, "status", c->status);
        if (!j)
                return rh_error_set(err, -ENOMEM, "clone %s: cannot encode", c->id);
        if (c->ipam.plugin[0]) {
                json_object_set_new(j, "ipam", json_string(c->ipam.plugin));
                json_object_set_new(j, "ipam_config", json_string(c->ipam.config));
        }
        if (c->nics > 1) {
                json_t *xs = json_array();
                for (unsigned k = 1; k < c->nics; k++) {
                        const struct vmm_clone_nic *x = &c->xnic[k - 1];
                        char m[18];
                        rh_mac_format(x->mac, m);
                        json_array_append_new(xs, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "nic", (int)k, "tap",
                                                            x->tap, "ip", x->ip, "mac", m, "ipam", x->ipam.plugin,
                                                            "ipam_config", x->ipam.config));
                }
                json_object_set_new(j, "nics", json_integer(c->nics));
                json_object_set_new(j, "extra_nics", xs);
        }
        snprintf(path, sizeof(path), "%s/meta.json", c->dir);
        return write_json_atomic(j, path, err);
}

/* "nics" (absent: 1) and "extra_nics" [{nic, tap, ip, mac, ipam, ipam_config}]. */
static int load_clone_nics(json_t *j, struct vmm_clone *c)
{
        json_t *n = json_object_get(j, "nics"), *xs = json_object_get(j, "extra_nics");

        c->nics = 1;
        if (!n && !xs)
                return 0;
        if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > VMM_MAX_NICS ||
            !json_is_array(xs) || json_array_size(xs) != (size_t)json_integer_value(n) - 1)
                return -EINVAL;
        c->nics = (unsigned)json_integer_value(n);
        for (unsigned k = 1; k < c->nics; k++) {
                json_t *x = json_array_get(xs, k - 1);
                struct vmm_clone_nic *d = &c->xnic[k - 1];
                char m[32];
                if (json_integer_value(json_object_get(x, "nic")) != (json_int_t)k ||
                    get_str(x, "tap", d->tap, sizeof(d->tap), false) < 0 ||
                    get_str(x, "ip", d->ip, sizeof(d->ip), false) < 0 || get_str(x, "mac", m, sizeof(m), false) < 0 ||
                    get_str(x, "ipam", d->ipam.plugin, sizeof(d->ipam.plugin), false) < 0 ||
                    get_str(x, "ipam_config", d->ipam.config, sizeof(d->ipam.config), false) < 0)
                        return -EINVAL;
                if (m[0] && rh_mac_parse(m, d->mac) < 0)
                        return -EINVAL;
        }
        return 0;
}

json_t *vmm_clone_nics_json(const struct vmm_clone *c)
{
        static const uint8_t zero[6];
        json_t *arr = json_array();
        char m[18];

        for (unsigned k = 0; arr && k < (c->nics ? c->nics : 1); k++) {
                const uint8_t *mac = k ? c->xnic[k - 1].mac : c->mac;
                if (memcmp(mac, zero, 6) == 0)
                        snprintf(m, sizeof(m), "-");
                else
                        rh_mac_format(mac, m);
                json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:s}", "nic", (int)k, "ip",
                                                     k ? c->xnic[k - 1].ip : c->ip, "mac", m, "tap",
                                                     k ? c->xnic[k - 1].tap : c->tap));
        }
        return arr;
}

int vmm_clone_load(const char *state_dir, const char *id, struct vmm_clone *ret, struct rh_error *err)
{
        struct vmm_clone c = {0};
        char path[PATH_MAX + 16], mac[32];
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *j = NULL;
        int r;

        if (!vmm_name_valid(id))
                return rh_error_set(err, -EINVAL, "bad clone id '%s'", id);
        snprintf(c.dir, sizeof(c.dir), "%s/clones/%s", state_dir, id);
        snprintf(path, sizeof(path), "%s/meta.json", c.dir);
        r = read_file_alloc(path, 1 << 16, &text, NULL);
        if (r == -ENOENT && access(c.dir, F_OK) == 0) {
                /* A directory without a record: an interrupted allocation. */
                snprintf(c.id, sizeof(c.id), "%s", id);
                snprintf(c.status, sizeof(c.status), "broken");
                *ret = c;
                return 0;
        }
        if (r < 0)
                return rh_error_set(err, r, "no clone '%s' (rehome clone list)", id);
        j = json_loads(text, 0, NULL);
        if (!json_is_object(j) || get_str(j, "id", c.id, sizeof(c.id), true) < 0 ||
            get_str(j, "template", c.template_name, sizeof(c.template_name), false) < 0 ||
            get_str(j, "tap", c.tap, sizeof(c.tap), false) < 0 ||
            get_str(j, "ip", c.ip, sizeof(c.ip), false) < 0 ||
            get_str(j, "gateway", c.gateway, sizeof(c.gateway), false) < 0 ||
            get_str(j, "mac", mac, sizeof(mac), false) < 0 ||
            get_str(j, "vmgenid", c.vmgenid, sizeof(c.vmgenid), false) < 0 ||
            get_str(j, "qmp", c.qmp_path, sizeof(c.qmp_path), false) < 0 ||
            get_str(j, "console", c.console_path, sizeof(c.console_path), false) < 0 ||
            get_str(j, "status", c.status, sizeof(c.status), false) < 0 ||
            get_str(j, "ipam", c.ipam.plugin, sizeof(c.ipam.plugin), false) < 0 ||
            get_str(j, "ipam_config", c.ipam.config, sizeof(c.ipam.config), false) < 0) {
                snprintf(c.id, sizeof(c.id), "%s", id);
                snprintf(c.status, sizeof(c.status), "broken");
                *ret = c;
                return 0;
        }
        if (mac[0])
                rh_mac_parse(mac, c.mac);
        if (load_clone_nics(j, &c) < 0) {
                snprintf(c.status, sizeof(c.status), "broken");
                *ret = c;
                return 0;
        }
        c.pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
        c.starttime = (unsigned long long)json_integer_value(json_object_get(j, "starttime"));
        c.owner = (pid_t)json_integer_value(json_object_get(j, "owner"));
        c.owner_starttime = (unsigned long long)json_integer_value(json_object_get(j, "owner_starttime"));
        *ret = c;
        return 0;
}

int vmm_clone_list(const char *state_dir, char ***ret_ids, struct rh_error *err)
{
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/clones", state_dir);
        return list_dir(dir, ret_ids, err);
}

bool vmm_clone_alive(const struct vmm_clone *c)
{
        if (c->pid > 0)
                return c->starttime && proc_starttime(c->pid) == c->starttime;
        if (c->owner > 0)
                return c->owner_starttime && proc_starttime(c->owner) == c->owner_starttime;
        return false;
}

int vmm_clone_alloc(const char *state_dir, struct vmm_clone *c, struct rh_error *err)
{
        char base[PATH_MAX];

        snprintf(base, sizeof(base), "%s/clones", state_dir);
        if (vmm_mkdir_p(base, 0755) < 0)
                return rh_error_set(err, -errno, "%s: %s", base, strerror(errno));
        for (unsigned n = 1; n < 100000; n++) {
                snprintf(c->id, sizeof(c->id), "c%u", n);
                snprintf(c->dir, sizeof(c->dir), "%s/%s", base, c->id);
                if (mkdir(c->dir, 0755) == 0) {
                        snprintf(c->tap, sizeof(c->tap), "rh%s", c->id);
                        snprintf(c->qmp_path, sizeof(c->qmp_path), "%s/qmp.sock", c->dir);
                        snprintf(c->console_path, sizeof(c->console_path), "%s/console.log", c->dir);
                        c->owner = getpid();
                        c->owner_starttime = proc_starttime(c->owner);
                        snprintf(c->status, sizeof(c->status), "starting");
                        return 0;
                }
                if (errno != EEXIST)
                        return rh_error_set(err, -errno, "%s: %s", c->dir, strerror(errno));
        }
        return rh_error_set(err, -ENOSPC, "no free clone id in %s", base);
}

int vmm_clone_remove_record(const struct vmm_clone *c)
{
        if (!c->dir[0])
                return 0;
        return vmm_rm_rf(c->dir) < 0 ? -errno : 0;
}

bool vmm_clone_in_flight(const struct vmm_clone *c)
{
        static const char *const final[] = {"running", "warm", "failed", "no-ack", "invalid", "applied", "broken"};

        for (size_t i = 0; i < ELEMENTSOF(final); i++)
                if (strcmp(c->status, final[i]) == 0)
                        return false;
        return c->owner > 0 && c->owner_starttime && proc_starttime(c->owner) == c->owner_starttime;
}

static bool same_addr(const char *a, const char *b)
{
        struct rh_ipaddr x, y;
        uint8_t px, py;
        if (rh_ip_parse(a, &x, &px) < 0 || rh_ip_parse(b, &y, &py) < 0)
                return false;
        return x.family == y.family && memcmp(x.addr, y.addr, x.family == 4 ? 4 : 16) == 0;
}

int vmm_identity_in_use(const char *state_dir, const char *ip, const uint8_t *mac, char *ret_owner,
                        size_t owner_len)
{
        static const uint8_t zero[6];
        char **ids = NULL;
        int r = 0;

        if (vmm_clone_list(state_dir, &ids, NULL) < 0)
                return 0;
        for (size_t i = 0; ids[i]; i++) {
                struct vmm_clone c;
                if (vmm_clone_load(state_dir, ids[i], &c, NULL) < 0 || strcmp(c.status, "warm") == 0)
                        continue;
                bool ip_match = c.ip[0] && same_addr(c.ip, ip);
                bool mac_match = mac && memcmp(c.mac, zero, 6) != 0 && memcmp(c.mac, mac, 6) == 0;
                /* Every NIC of a multi-NIC clone holds its address and MAC too. */
                for (unsigned k = 1; k < c.nics; k++) {
                        ip_match |= c.xnic[k - 1].ip[0] && same_addr(c.xnic[k - 1].ip, ip);
                        mac_match |= mac && memcmp(c.xnic[k - 1].mac, zero, 6) != 0 &&
                                     memcmp(c.xnic[k - 1].mac, mac, 6) == 0;
                }
                if ((ip_match || mac_match) && (vmm_clone_alive(&c) || vmm_clone_in_flight(&c))) {
                        snprintf(ret_owner, owner_len, "clone %s", c.id);
                        r = -EADDRINUSE;
                        break;
                }
        }
        vmm_strv_free(ids);
        return r;
}

/* ---- template creation records ---- */

int vmm_template_files_save(const char *dir, const char *ram_path, const char *tap, bool creating,
                            struct rh_error *err)
{
        char path[PATH_MAX + 16];
        _cleanup_json_ json_t *j = NULL;
        pid_t self = getpid();

        j = json_pack("{s:s, s:s, s:i, s:I}", "ram", ram_path, "tap", tap, "creator", creating ? (int)self : 0,
                      "creator_starttime", creating ? (json_int_t)proc_starttime(self) : (json_int_t)0);
        if (!j)
                return rh_error_set(err, -ENOMEM, "cannot encode %s/files.json", dir);
        snprintf(path, sizeof(path), "%s/files.json", dir);
        return write_json_atomic(j, path, err);
}

int vmm_template_files_load(const char *dir, char *ret_ram, size_t ram_len, char *ret_tap, size_t tap_len,
                            bool *ret_creating)
{
        char path[PATH_MAX + 16];
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *j = NULL;
        int r;

        snprintf(path, sizeof(path), "%s/files.json", dir);
        r = read_file_alloc(path, 1 << 16, &text, NULL);
        if (r < 0)
                return r;
        j = json_loads(text, 0, NULL);
        if (!json_is_object(j) || get_str(j, "ram", ret_ram, ram_len, true) < 0 ||
            get_str(j, "tap", ret_tap, tap_len, true) < 0)
                return -EINVAL;
        pid_t pid = (pid_t)json_integer_value(json_object_get(j, "creator"));
        unsigned long long st = (unsigned long long)json_integer_value(json_object_get(j, "creator_starttime"));
        *ret_creating = pid > 0 && st && proc_starttime(pid) == st;
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Presenting forks: the per-stage timing table (human) and the JSON form
 * (--json), plus the small parsers for durations and sizes the verbs share.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vmm.h"

int vmm_parse_duration_ms(const char *s, int *ret_ms)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || v < 0)
                return -EINVAL;
        if (*end == '\0' || strcmp(end, "s") == 0)
                v *= 1000;
        else if (strcmp(end, "ms") == 0)
                ;
        else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
                v *= 60000;
        else
                return -EINVAL;
        if (v > 24 * 3600 * 1000.0 || v < 1)
                return -EINVAL;
        *ret_ms = (int)v;
        return 0;
}

int vmm_parse_size(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        switch (*end) {
        case 'G':
        case 'g':
                v <<= 30;
                end++;
                break;
        case 'M':
        case 'm':
                v <<= 20;
                end++;
                break;
        case 'K':
        case 'k':
                v <<= 10;
                end++;
                break;
        case '\0':
                break;
        default:
                return -EINVAL;
        }
        if (*end == 'i') /* MiB */
                end++;
        if (*end == 'B')
                end++;
        if (*end != '\0' || v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double stage(const struct vmm_fork_result *r, size_t off)
{
        return *(const double *)((const char *)&r->t + off);
}

double vmm_timing_median(const struct vmm_fork_result *res, const int *rcs, unsigned n, size_t off)
{
        double *v = calloc(n ? n : 1, sizeof(double));
        unsigned k = 0;
        double m = NAN;

        if (!v)
                return NAN;
        for (unsigned i = 0; i < n; i++)
                if (rcs[i] == 0 && stage(&res[i], off) >= 0)
                        v[k++] = stage(&res[i], off);
        if (k) {
                qsort(v, k, sizeof(double), cmp_double);
                m = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
        }
        free(v);
        return m;
}

/* name: the text table's column; key: its JSON key, one a shell can use (docs/JSON.md). */
static const struct {
        const char *name, *key;
        size_t off;
} stages[] = {
        {"spawn", "spawn_ms", offsetof(struct vmm_fork_timing, spawn)},
        {"incoming", "incoming_ms", offsetof(struct vmm_fork_timing, incoming)},
        {"patch", "patch_ms", offsetof(struct vmm_fork_timing, patch)},
        {"resume>signal", "resume_to_signal_ms", offsetof(struct vmm_fork_timing, resume_signal)},
        {"resume>read", "resume_to_read_ms", offsetof(struct vmm_fork_timing, resume_read)},
        {"resume>applied", "resume_to_applied_ms", offsetof(struct vmm_fork_timing, resume_applied)},
        {"resume>ack", "resume_to_ack_ms", offsetof(struct vmm_fork_timing, resume_ack)},
        {"total", "total_ms", offsetof(struct vmm_fork_timing, total)},
};

void vmm_print_timings(FILE *f, const struct vmm_fork_result *res, const int *rcs, unsigned n)
{
        fprintf(f, "%-6s %-16s %-17s %-8s", "clone", "ip", "mac", "signal");
        for (size_t s = 0; s < sizeof(stages) / sizeof(stages[0]); s++)
                fprintf(f, " %9s", stages[s].name);
        fprintf(f, "\n");
        for (unsigned i = 0; i < n; i++) {
                char mac[18];
                rh_mac_format(res[i].clone.mac, mac);
                fprintf(f, "%-6s %-16s %-17s %-8s", res[i].clone.id, res[i].clone.ip, mac,
                        res[i].acked ? rh_signal_name(res[i].ack.signal) : "-");
                for (size_t s = 0; s < sizeof(stages) / sizeof(stages[0]); s++) {
                        double v = stage(&res[i], stages[s].off);
                        bool guest = s >= 3 && s <= 6;
                        if ((guest && !res[i].t.have_guest) || v < 0)
                                fprintf(f, " %9s", "-");
                        else
                                fprintf(f, " %9.1f", v);
                }
                fprintf(f, "%s\n", rcs[i] == 0 ? "" : "  FAILED");
        }
        if (n > 1) {
                fprintf(f, "%-6s %-16s %-17s %-8s", "median", "", "", "");
                for (size_t s = 0; s < sizeof(stages) / sizeof(stages[0]); s++)
                        fprintf(f, " %9.1f", vmm_timing_median(res, rcs, n, stages[s].off));
                fprintf(f, "\n");
        }
        fprintf(f,
                "(milliseconds; resume>* are guest stamps anchored at the ack, see 'rehome fork --help')\n");
}

json_t *vmm_guest_costs_json(const struct rh_ack *ack)
{
        json_t *o, *steps;

        if (!(ack->t_signal_ns > 0 && ack->t_read_ns >= ack->t_signal_ns && ack->t_applied_ns >= ack->t_read_ns &&
              ack->t_ack_ns >= ack->t_applied_ns))
                return NULL;
        o = json_pack("{s:I, s:I, s:I}", "signal_read", (json_int_t)(ack->t_read_ns - ack->t_signal_ns),
                      "read_applied", (json_int_t)(ack->t_applied_ns - ack->t_read_ns), "applied_ack",
                      (json_int_t)(ack->t_ack_ns - ack->t_applied_ns));
        if (!o || !ack->has_stats)
                return o;
        steps = json_object();
        for (unsigned i = 0; i < RH_STEP_COUNT; i++)
                json_object_set_new(steps, rh_ack_step_name(i), json_integer(ack->step_ns[i]));
        json_object_set_new(o, "steps", steps);
        json_object_set_new(o, "syscalls", json_integer(ack->syscalls));
        json_object_set_new(o, "netlink_round_trips", json_integer(ack->nl_round_trips));
        return o;
}

json_t *vmm_fork_result_json(const struct vmm_fork_result *r, int rc, const struct rh_error *err)
{
        char mac[18];
        json_t *t = json_object();
        json_t *o;

        rh_mac_format(r->clone.mac, mac);
        for (size_t s = 0; s < sizeof(stages) / sizeof(stages[0]); s++) {
                double v = stage(r, stages[s].off);
                bool guest = s >= 3 && s <= 6;
                json_object_set_new(t, stages[s].key,
                                    (guest && !r->t.have_guest) || v < 0 ? json_null() : json_real(v));
        }
        json_object_set_new(t, "cont_ms", json_real(r->t.cont));
        json_object_set_new(t, "host_ack_seen_ms", json_real(r->t.host_ack_seen));
        o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:b, s:o}", "clone", r->clone.id, "ip", r->clone.ip, "mac",
                      mac, "pid", (int)r->clone.pid, "tap", r->clone.tap, "ok", rc == 0, "timings_ms", t);
        if (r->acked) {
                json_object_set_new(o, "ack",
                                    json_pack("{s:s, s:s, s:i, s:i, s:s}", "status",
                                              rh_ack_status_name(r->ack.status), "signal",
                                              rh_signal_name(r->ack.signal), "applied", (int)r->ack.applied,
                                              "error_code", (int)r->ack.error_code, "error", r->ack.error));
        }
        if (r->clone.nics > 1) /* every NIC of a multi-NIC clone */
                json_object_set_new(o, "nics", vmm_clone_nics_json(&r->clone));
        if (rc < 0 && err)
                json_object_set_new(o, "error", json_string(err->msg));
        if (r->acked) {
                json_object_set_new(o, "ack_channel",
                                    json_string(r->ack_channel ? r->ack_channel : "mailbox"));
                json_object_set_new(t, "udp_ack_seen_ms",
                                    r->udp_ack_seen >= 0 ? json_real(r->udp_ack_seen) : json_null());
        }
        if (r->acked) {
                json_t *g = vmm_guest_costs_json(&r->ack);
                if (g)
                        json_object_set_new(o, "guest_ns", g);
        }
        if (r->seen[0])
                json_object_set_new(o, "seen", json_string(r->seen));
        if (r->n_payloads) {
                /* Per name: "delivered", the agent's errno text, or "unknown" without an ack record. */
                json_t *p = json_object();
                for (unsigned i = 0; i < r->n_payloads; i++) {
                        const char *st = "unknown";
                        if (r->acked && r->ack.payloads_total == r->n_payloads)
                                st = (r->ack.payloads_delivered >> i) & 1 ? "delivered"
                                     : r->ack.payload_errno[i]        ? strerror(r->ack.payload_errno[i])
                                                                       : "not delivered";
                        json_object_set_new(p, r->payload_names[i], json_string(st));
                }
                json_object_set_new(o, "payloads", p);
        }
        if (r->n_hypeman) {
                /* "applied": its ack arrived; "waiting": asked for, not (yet) seen; "written": the caller's ack_port. */
                json_t *h = json_object();
                for (unsigned i = 0; i < r->n_hypeman; i++)
                        json_object_set_new(h, r->hypeman_names[i],
                                            json_string(r->hypeman_acked >> i & 1     ? "applied"
                                                        : r->hypeman_awaited >> i & 1 ? "waiting"
                                                                                      : "written"));
                json_object_set_new(o, "hypeman_mailboxes", h);
        }
        json_object_set_new(o, "clock_offset_ms", r->have_clock_offset ? json_real(r->clock_offset_ms) : json_null());
        json_object_set_new(o, "prefetched_bytes", json_integer((json_int_t)r->prefetched_bytes));
        return o;
}

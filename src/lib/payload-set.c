/* SPDX-License-Identifier: MIT */
/*
 * The host's set of named payloads and hypeman fork mailboxes that travel
 * with one request (rehome/request.h): built from --payload/--hypeman-mailbox
 * files or the "payloads"/"hypeman_mailboxes" keys of a request document,
 * each entry checked (name, token, JSON object, size) when it is added.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rehome/request.h"

#define PAYLOAD_FILE_MAX (RH_PAYLOAD_PAGES_MAX * 4096u)

int rh_payload_set_add(struct rh_payload_set *set, bool hypeman, const char *name, const char *token,
                       const uint8_t *json, size_t len, struct rh_error *err)
{
        struct rh_named_json *arr = hypeman ? set->hypeman : set->payloads;
        unsigned *n = hypeman ? &set->n_hypeman : &set->n_payloads;
        const char *what = hypeman ? "hypeman mailbox" : "payload";
        struct rh_named_json *e;

        if (!rh_payload_name_valid(name))
                return rh_error_set(err, EINVAL, "%s name \"%.64s\" is invalid (want ^[A-Za-z0-9._:-]{1,64}$)", what,
                                    name);
        for (unsigned i = 0; i < *n; i++)
                if (strcmp(arr[i].name, name) == 0)
                        return rh_error_set(err, EINVAL, "%s %s given twice", what, name);
        if (*n >= RH_PAYLOADS_MAX)
                return rh_error_set(err, E2BIG, "more than %u %ss", RH_PAYLOADS_MAX, what);
        if (hypeman && token && *token && !rh_hfm_token_valid(token))
                return rh_error_set(err, EINVAL, "hypeman mailbox %s: token must be 1..%u bytes", name,
                                    RH_HFM_TOKEN_MAX);
        if (len > (hypeman ? RH_HFM_JSON_MAX : PAYLOAD_FILE_MAX))
                return rh_error_set(err, EFBIG, "%s %s: %zu bytes, at most %u", what, name, len,
                                    hypeman ? RH_HFM_JSON_MAX : PAYLOAD_FILE_MAX);
        if (!rh_json_object_check(json, len, NULL))
                return rh_error_set(err, EINVAL, "%s %s: not a JSON object", what, name);
        e = &arr[*n];
        memset(e, 0, sizeof(*e));
        e->data = malloc(len ? len : 1);
        if (!e->data)
                return rh_error_set(err, ENOMEM, "%s %s: out of memory", what, name);
        memcpy(e->data, json, len);
        e->len = (uint32_t)len;
        strcpy(e->name, name);
        if (hypeman && token)
                strcpy(e->token, token);
        (*n)++;
        return 0;
}

static int add_value(struct rh_payload_set *set, bool hypeman, const char *name, const char *token, json_t *v,
                     struct rh_error *err)
{
        char *text;
        int r;

        if (!json_is_object(v))
                return rh_error_set(err, EBADMSG, "%s %s: the value must be a JSON object",
                                    hypeman ? "hypeman_mailboxes" : "payloads", name);
        text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return rh_error_set(err, ENOMEM, "payloads: out of memory");
        r = rh_payload_set_add(set, hypeman, name, token, (const uint8_t *)text, strlen(text), err);
        free(text);
        return r;
}

int rh_payload_set_from_json(const char *text, size_t len, struct rh_payload_set *set, struct rh_error *err)
{
        json_error_t jerr;
        json_t *root, *v, *m;
        const char *key;
        size_t i;
        int r = 0;

        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return rh_error_set(err, EBADMSG, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root)) {
                r = rh_error_set(err, EBADMSG, "request: expected an object");
                goto out;
        }
        v = json_object_get(root, "payloads");
        if (v && !json_is_object(v)) {
                r = rh_error_set(err, EBADMSG, "payloads: expected an object of NAME: {...}");
                goto out;
        }
        if (v)
                json_object_foreach(v, key, m)
                        if ((r = add_value(set, false, key, NULL, m, err)) < 0)
                                goto out;
        v = json_object_get(root, "hypeman_mailboxes");
        if (v && !json_is_array(v)) {
                r = rh_error_set(err, EBADMSG, "hypeman_mailboxes: expected an array");
                goto out;
        }
        if (v)
                json_array_foreach(v, i, m) {
                        json_t *name = json_object_get(m, "name"), *token = json_object_get(m, "token");
                        json_t *payload = json_object_get(m, "payload");

                        if (!json_is_object(m) || !json_is_string(name) || (token && !json_is_string(token)) ||
                            !payload || json_object_size(m) != 2u + (token ? 1u : 0u)) {
                                r = rh_error_set(err, EBADMSG,
                                                 "hypeman_mailboxes[%zu]: expected {\"name\": S, \"token\": S, \"payload\": {...}}",
                                                 i);
                                goto out;
                        }
                        r = add_value(set, true, json_string_value(name), token ? json_string_value(token) : NULL,
                                      payload, err);
                        if (r < 0)
                                goto out;
                }
out:
        json_decref(root);
        return r;
}

unsigned rh_payload_set_views(const struct rh_payload_set *set, struct rh_payload ret[RH_PAYLOADS_MAX])
{
        for (unsigned i = 0; i < set->n_payloads; i++) {
                memset(&ret[i], 0, sizeof(ret[i]));
                strcpy(ret[i].name, set->payloads[i].name);
                ret[i].data = set->payloads[i].data;
                ret[i].len = set->payloads[i].len;
        }
        return set->n_payloads;
}

void rh_payload_set_clear(struct rh_payload_set *set)
{
        for (unsigned i = 0; i < set->n_payloads; i++)
                free(set->payloads[i].data);
        for (unsigned i = 0; i < set->n_hypeman; i++)
                free(set->hypeman[i].data);
        memset(set, 0, sizeof(*set));
}

int rh_hfm_json_with_ack_port(const uint8_t *json, size_t len, uint16_t port, uint8_t **ret, size_t *ret_len,
                              struct rh_error *err)
{
        json_error_t jerr;
        json_t *root;
        char *text;
        size_t n;

        root = json_loadb((const char *)json, len, 0, &jerr);
        if (!root || !json_is_object(root)) {
                json_decref(root);
                return rh_error_set(err, EINVAL, "fork mailbox payload must be a JSON object");
        }
        json_object_set_new(root, "ack_port", json_integer(port));
        text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!text)
                return rh_error_set(err, ENOMEM, "fork mailbox: out of memory");
        n = strlen(text);
        if (n > RH_HFM_JSON_MAX) {
                free(text);
                return rh_error_set(err, EMSGSIZE, "fork mailbox payload is %zu bytes after ack_port injection, at most %u",
                                    n, RH_HFM_JSON_MAX);
        }
        *ret = (uint8_t *)text;
        *ret_len = n;
        return 0;
}

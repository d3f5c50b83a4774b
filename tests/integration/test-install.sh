#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `meson install` into a staging directory, then build two consumers the way
# a user would: a C program through pkg-config (linked against the shared
# and the static library) and a C++ translation unit including every public
# header. The C program round-trips a request through a mailbox page.
set -euo pipefail
BUILD=${1:?build dir}
dest=$(mktemp -d /tmp/rehome-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
command -v cc >/dev/null && command -v pkg-config >/dev/null || { echo "SKIP: no cc/pkg-config"; exit 77; }
meson install -C "$BUILD" --destdir "$dest" --quiet >/dev/null
pc=$(dirname "$(find "$dest" -name rehome.pc | head -1)")
[ -n "$pc" ] || { echo "not ok - no rehome.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$dest
for h in error.h mailbox.h layout.h patch.h request.h; do
        [ -f "$(find "$dest" -path "*/include/rehome/$h" | head -1)" ] || { echo "not ok - $h not installed"; exit 1; }
done
cat > "$dest/consumer.c" <<'C'
#include <rehome/mailbox.h>
#include <rehome/request.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
        static uint8_t page[RH_MAILBOX_SIZE];
        struct rh_request req = { .seq = 1, .nonce = 42, .n_ifaces = 1, .n_addrs = 1 }, out;
        struct rh_arm arm = { .gpa = 0x1000 };
        struct rh_error err = { 0 };
        req.ifaces[0].match = RH_MATCH_NAME;
        strcpy(req.ifaces[0].name, "eth0");
        req.addrs[0] = (struct rh_addr){ .family = 4, .prefix = 24, .addr = { 10, 0, 0, 5 } };
        rh_mailbox_arm_write(page, &arm);
        if (rh_mailbox_write_request(page, &req, &err) < 0 ||
            rh_mailbox_read_request(page, &out, NULL, NULL, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
        }
        char *json = rh_request_to_json(&out, 0);
        printf("%s\n", json);
        return out.nonce == 42 && out.addrs[0].addr[3] == 5 ? 0 : 1;
}
C
cc -o "$dest/consumer" "$dest/consumer.c" $(pkg-config --cflags --libs rehome)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir rehome) "$dest/consumer" | grep -q '"address":"10.0.0.5/24"' \
        && echo "ok - C consumer (shared library via pkg-config)" || { echo "not ok - C consumer"; exit 1; }
cc -o "$dest/consumer-static" "$dest/consumer.c" $(pkg-config --cflags rehome) \
        "$(pkg-config --variable=libdir rehome)/librehome.a" $(pkg-config --libs jansson)
"$dest/consumer-static" >/dev/null && echo "ok - C consumer (static library)" || { echo "not ok - static consumer"; exit 1; }
if command -v c++ >/dev/null; then
        printf '#include <rehome/error.h>\n#include <rehome/mailbox.h>\n#include <rehome/layout.h>\n#include <rehome/patch.h>\n#include <rehome/request.h>\nint main() { return rh_crc32c(0, "123456789", 9) == 0xe3069283u ? 0 : 1; }\n' > "$dest/consumer.cpp"
        c++ -std=c++17 -Wall -Werror -o "$dest/consumer-cxx" "$dest/consumer.cpp" $(pkg-config --cflags --libs rehome)
        LD_LIBRARY_PATH=$(pkg-config --variable=libdir rehome) "$dest/consumer-cxx" && echo "ok - C++ consumer" || { echo "not ok - C++ consumer"; exit 1; }
fi
find "$dest" -name rehome-agent.static | grep -q . && echo "ok - static agent installed" || { echo "not ok - agent not installed"; exit 1; }
echo "5 passed, 0 failed"

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-man-help.py REHOME REHOME_AGENT MAN_DIR

The manual pages say what --help says: every option that `rehome --help`
names appears in rehome(1)'s GLOBAL OPTIONS; every verb of `rehome --help`
has a `## rehome VERB` section in man/rehome.1.scd and every option its
--help (and each of its sub-verbs' own --help, such as `template record-ws
--help`) names appears in that verb's sections or, for the global options
(--json, --verbose, --state-dir, --help, --version), in GLOBAL OPTIONS; no section is left for a
verb that no longer exists; every option of `rehome-agent --help` appears in
man/rehome-agent.8.scd. Prints one TAP-style line per check.
"""
import re
import subprocess
import sys

OPT = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
passed = failed = 0


def report(ok, what):
    global passed, failed
    print(("ok - " if ok else "not ok - ") + what)
    if ok:
        passed += 1
    else:
        failed += 1


def helptext(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


def options(text):
    """Long options anywhere in the text; short ones where an option line starts with one."""
    opts = {m.group(1) for m in OPT.finditer(text) if m.group(1).startswith("--")}
    opts |= set(re.findall(r"^\s+(-[a-zA-Z]),", text, re.M))
    return opts


def unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


def sections(scd):
    """{heading: text} for '# X' and '## X' headings of a scdoc file."""
    out, cur = {}, ""
    for line in scd.split("\n"):
        m = re.match(r"^(#{1,2}) (.*)$", line)
        if m:
            cur = m.group(2).strip()
            out.setdefault(cur, "")
        else:
            out[cur] = out.get(cur, "") + unescape(line) + "\n"
    return out


def has(text, opt):
    return re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", text) is not None


def check(label, want, text):
    missing = sorted(o for o in want if not has(text, o))
    report(not missing, label + (": missing " + " ".join(missing) if missing else f" ({len(want)} options)"))


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: check-man-help.py REHOME REHOME_AGENT MAN_DIR")
    rehome, agent, mandir = sys.argv[1:]
    with open(f"{mandir}/rehome.1.scd", encoding="utf-8") as f:
        sec = sections(f.read())
    top = helptext(rehome, "--help")
    verbs = re.findall(r"^  ([a-z][a-z-]+)\s{2,}", top.split("Verbs:")[1].split("Global options:")[0], re.M)
    report(len(verbs) > 5, f"rehome --help lists {len(verbs)} verbs")
    check("rehome(1) GLOBAL OPTIONS", options(top.split("Global options:")[1]), sec.get("GLOBAL OPTIONS", ""))

    for v in verbs:
        h = helptext(rehome, v, "--help")
        want = options(h)
        for sub in sorted(set(re.findall(r"rehome " + re.escape(v) + r" ([a-z][a-z-]+)", h))):
            hs = helptext(rehome, v, sub, "--help")
            if hs.startswith("Usage") and hs.strip() != h.strip():
                want |= options(hs)
        mine = [k for k in sec if k == f"rehome {v}" or k.startswith(f"rehome {v} ")]
        if not mine:
            report(False, f"rehome(1): no section '## rehome {v}'")
            continue
        # The global options (--json, --help, ...) are documented once, for every verb.
        check(f"rehome(1) rehome {v}", want, "".join(sec[k] for k in mine) + sec.get("GLOBAL OPTIONS", ""))

    stale = sorted(k for k in sec if k.startswith("rehome ") and k.split()[1] not in verbs)
    report(not stale, "rehome(1): no section for a verb rehome lacks" + (": " + ", ".join(stale) if stale else ""))

    with open(f"{mandir}/rehome-agent.8.scd", encoding="utf-8") as f:
        agent_page = unescape(f.read())
    check("rehome-agent(8)", options(helptext(agent, "--help")), agent_page)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

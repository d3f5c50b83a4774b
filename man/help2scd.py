#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""help2scd.py REHOME verbs|top [VERB...]

A starting point, not the source: prints scdoc for `rehome --help` (top) or
for each verb's --help (verbs: a `## rehome VERB` section per verb, and one
per sub-verb whose own --help differs, such as `template record-ws`). The
sections of man/rehome.1.scd were made with it and are then edited by hand;
when a verb gains options and `meson test man-help` fails, regenerate that
verb's section (`help2scd.py build/src/cli/rehome verbs fork`) and merge it
into the page. Also works on rehome-agent with `top`.
"""
import re,subprocess,sys
R=sys.argv[1]
def run(*a):
    p=subprocess.run([R,*a],capture_output=True,text=True); return p.stdout+p.stderr
def esc(s):
    return s.replace('\\','\\\\').replace('*','\\*').replace('_','\\_')
class M:
    def __init__(s,d): s.d=d
    def group(s,k): return s.d[k]
def optmatch(l):
    m=re.match(r'^  (-\w, )?(--?[a-zA-Z][\w-]*)(.*)$',l)
    if not m: return None
    rest=m.group(3); arg=''; desc=''
    mm=re.match(r'^ (\S+)(.*)$',rest)
    if mm and not re.fullmatch(r'[a-z][a-z-]*',mm.group(1)):
        arg=mm.group(1); rest=mm.group(2)
    desc=rest.strip()
    return M({'short':m.group(1),'opt':m.group(2),'arg':arg,'desc':desc})
class _R:
    def match(s,l): return optmatch(l)
optre=_R()
def conv(text):
    lines=text.rstrip('\n').split('\n')
    out=[]; i=0
    # usage block
    if lines[0].startswith('Usage:'):
        u=[]
        while i<len(lines) and lines[i].strip():
            u.append(lines[i]); i+=1
        out.append('```'); out+= [l.replace('Usage: ','',1) if k==0 else (l[7:] if l.startswith('       ') else l.strip()) for k,l in enumerate(u)]; out.append('```'); out.append('')
    inopt=False
    while i<len(lines):
        l=lines[i]
        m=optre.match(l) if l.startswith('  -') else None
        if m:
            head='*'+(m.group('short') or '')+m.group('opt')+'*'
            if m.group('arg').strip(): head+=' _'+esc(m.group('arg').strip())+'_'
            desc=[m.group('desc')] if m.group('desc') else []
            j=i+1
            while j<len(lines) and re.match(r'^ {4,}\S',lines[j]) and not lines[j].startswith('  -'):
                desc.append(lines[j].strip()); j+=1
            out.append(head); 
            if desc: out.append('\t'+esc(' '.join(desc)))
            out.append('')
            i=j; continue
        if re.match(r'^\S.*:$',l) and i+1<len(lines) and lines[i+1].startswith('  -'):
            out.append('*'+esc(l)+'*'); out.append(''); i+=1; continue
        if not l.strip():
            if out and out[-1]!='': out.append('')
            i+=1; continue
        if l.startswith('  '):
            out.append('\t'+esc(l.strip())); out.append('')  # indented literal-ish
        else:
            if l.lstrip()[:1] in '-.+' and out and not out[-1].startswith(('*','\t','```')):
                if out[-1]: out[-1]+=' '+esc(l.strip())  # scdoc reads a leading - or . as a list
                else: out.append('\\'+esc(l.strip()))
            else:
                out.append(esc(l))
        i+=1
    return '\n'.join(out)
mode=sys.argv[2]
if mode=='verbs':
    top=run('--help')
    verbs=re.findall(r'^  ([a-z][a-z-]+)\s{2,}',top.split('Verbs:')[1].split('Global options:')[0],re.M)
    if len(sys.argv)>3: verbs=[v for v in verbs if v in sys.argv[3:]]
    for v in verbs:
        h=run(v,'--help')
        print('## rehome '+v+'\n')
        print(conv(h)); print()
        subs=sorted(set(re.findall(r'rehome '+v+r' ([a-z][a-z-]+)',h)))
        for s in subs:
            hs=run(v,s,'--help')
            if hs.strip()!=h.strip() and hs.startswith('Usage'):
                print('## rehome '+v+' '+s+'\n'); print(conv(hs)); print()
else:
    print(conv(run('--help')))

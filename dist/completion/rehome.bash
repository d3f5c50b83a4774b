# SPDX-License-Identifier: MIT
# bash completion for rehome: verbs from `rehome --help`, each verb's
# options from `rehome VERB --help` (so it never lags behind the binary),
# file names for options that take a path.
_rehome()
{
        local cur prev verb i
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        verb=
        for ((i = 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                --state-dir) ((i++)) ;;
                -*) ;;
                *) verb=${COMP_WORDS[i]}; break ;;
                esac
        done
        case $prev in
        --state-dir|--image|--ram-dir|--disk-dir|--run-dir|--hooks-dir|--out)
                COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --file|--mem-file|--request|--agent|--builder|--ipam-config|--socket|--handshake|--working-set)
                COMPREPLY=($(compgen -f -- "$cur")); return ;;
        esac
        if [ -z "$verb" ]; then
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "--json --verbose --state-dir --help --version" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$(rehome --help 2>/dev/null |
                                sed -n '/^Verbs:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')" -- "$cur"))
                fi
                return
        fi
        if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$(rehome "$verb" --help 2>/dev/null |
                        grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)" -- "$cur"))
        elif [ "$i" -eq $((COMP_CWORD - 1)) ]; then
                # The sub-verb: the words after "rehome VERB" in its usage lines.
                COMPREPLY=($(compgen -W "$(rehome "$verb" --help 2>/dev/null |
                        sed -n "s/^\(Usage:\)\{0,1\} *rehome $verb \([a-z][a-z-]*\).*/\2/p" | sort -u)" -- "$cur"))
        fi
}
complete -F _rehome rehome

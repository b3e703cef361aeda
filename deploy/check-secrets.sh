#!/bin/sh
# Start guard of every docker-compose.yaml service that holds a secret (docs/deployment.md, "What
# the stack refuses, and why"):
#
#   check-secrets.sh NAME... [-- COMMAND [ARG...]]
#
# Refuses (one line per variable on stderr, exit 2) when a named environment variable is empty,
# blank or still holds a change-me placeholder of .env.example (anywhere in its value, so a URL
# built from a placeholder password is refused too); otherwise runs COMMAND in its place (exec).
# Values are never printed.  POSIX sh and shell built-ins only: no value reaches a command line.
set -u

refused=0
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    name=$1
    shift
    case $name in
        '' | [0-9]* | *[!A-Za-z0-9_]*)
            echo "check-secrets.sh: not a variable name: '$name'" >&2
            exit 2
            ;;
    esac
    eval "value=\${$name-}"
    case $value in
        *[![:space:]]*) ;;
        *)
            echo "seaice: refusing to start: $name is empty; set it in .env (docs/deployment.md)" >&2
            refused=1
            continue
            ;;
    esac
    case $value in
        *[Cc][Hh][Aa][Nn][Gg][Ee][-_][Mm][Ee]* | *[Cc][Hh][Aa][Nn][Gg][Ee][Mm][Ee]*)
            echo "seaice: refusing to start: $name still holds a change-me placeholder of .env.example;" \
                "put a real secret in .env (docs/deployment.md)" >&2
            refused=1
            ;;
    esac
done
[ "$refused" -eq 0 ] || exit 2
[ "$#" -gt 0 ] && shift
[ "$#" -gt 0 ] || exit 0
exec "$@"

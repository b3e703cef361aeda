#!/bin/sh
# Starts Redis (docker-compose.yaml, service redis) with its password out of every command line:
#
#   redis-server.sh COMMAND... -
#
# runs COMMAND (`docker-entrypoint.sh redis-server -`, whose `-` makes redis-server read its
# configuration from stdin) in its place with `requirepass $REDIS_PASSWORD` on stdin.  The
# here-document is expanded by this shell, so the password is never an argument of any process.
set -eu
: "${REDIS_PASSWORD:?REDIS_PASSWORD is not set}"
exec "$@" <<CONF
requirepass $REDIS_PASSWORD
CONF

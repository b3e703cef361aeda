#!/bin/sh
# One shot of docker-compose.yaml's service minio-init: the bucket of every s3:// URL among
# SEAICE_LAKE and SEAICE_CATALOG, and the pipeline's S3 user (AWS_ACCESS_KEY_ID) with the readwrite
# policy.  No secret is an argument of any process: mc finds the server and the root credentials
# of the alias `local` in MC_HOST_local (http://user:password@host:port, set by compose), and
# `mc admin user add` given no secret key reads it from stdin (printf is a shell built-in).
set -eu
for url in "$SEAICE_LAKE" "$SEAICE_CATALOG"; do
    case "$url" in
        s3://*) bucket="${url#s3://}"; mc mb --ignore-existing "local/${bucket%%/*}" ;;
        *) echo "not on S3, no bucket: $url" ;;
    esac
done
printf '%s\n' "$AWS_SECRET_ACCESS_KEY" | mc admin user add local "$AWS_ACCESS_KEY_ID"
# a second `up` finds the policy attached already, which mc reports as an error
mc admin policy attach local readwrite --user "$AWS_ACCESS_KEY_ID" || echo "readwrite: attached before"

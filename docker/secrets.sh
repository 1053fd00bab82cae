#!/usr/bin/env bash
# Random credentials for the local Docker stack, printed as an env file:
#   docker/secrets.sh > docker/.env        (git-ignored; never commit it)
# Every service reads them from the environment; none is written in a file
# of the repository.
set -euo pipefail
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
echo "AWS_ACCESS_KEY_ID=lakeforge"
echo "AWS_SECRET_ACCESS_KEY=$(random)"
echo "POSTGRES_PASSWORD=$(random)"

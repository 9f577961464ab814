#!/bin/sh
# SageMaker starts inference containers as `docker run IMAGE serve`: serve the detector on 8080.
# Anything else (Metaflow's @batch/@kubernetes commands, `docker run IMAGE python ...`) runs as is.
set -e
if [ "${1:-}" = "serve" ]; then
  shift
  exec python -m detector serve "$@"
fi
exec "$@"

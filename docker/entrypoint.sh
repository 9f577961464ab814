#!/bin/sh
# SageMaker starts inference containers as `docker run IMAGE serve`: serve the detector on 8080.
# `docker run -p 8501:8501 IMAGE app [--endpoint URL | --model-dir DIR | --run ID]` serves the front end.
# Anything else (Metaflow's @batch/@kubernetes commands, `docker run IMAGE python ...`) runs as is.
set -e
if [ "${1:-}" = "serve" ]; then
  shift
  exec python -m detector serve "$@"
fi
if [ "${1:-}" = "app" ]; then
  shift
  exec python -m detector app --host 0.0.0.0 "$@"
fi
exec "$@"

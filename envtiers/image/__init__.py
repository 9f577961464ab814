"""The image tier: a Docker image built from the linux-64 pip lock, pinned by digest."""

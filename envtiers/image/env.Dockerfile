# The image tier's environment image: the linux-64 pip lock installed offline from the hashed
# wheelhouse, over the project's pinned base. envtiers' own recipe, the same for every project:
# `envtiers image build` builds it once per lock + base + this file (tag `env-<hash>`), pushes it,
# and the project's docker/Dockerfile starts `FROM` it by digest. A code-only change therefore
# sends only the code to docker and pushes only the code's layers.
#
# Context: build/image (the wheelhouse and requirements.txt, a copy of lockfiles/pip/linux-64.txt).
# Works with the classic builder (no RUN --mount): some build machines have no BuildKit.
ARG BASE_IMAGE

# --- install: the locked environment, built without network ----------------------------------
FROM ${BASE_IMAGE} AS install
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1
COPY requirements.txt /tmp/envtiers/requirements.txt
COPY wheelhouse/ /tmp/envtiers/wheelhouse/
# --require-hashes: a wheel that differs from the lock by one byte fails the build.
# --no-deps: the lock is the whole closure; nothing is resolved here.
RUN python3 -m venv /opt/envtiers/env \
 && /opt/envtiers/env/bin/python -m pip install --no-index --find-links /tmp/envtiers/wheelhouse \
      --only-binary=:all: --require-hashes --no-deps -r /tmp/envtiers/requirements.txt \
 && rm -rf /tmp/envtiers

# --- env: the base and the environment, without the wheelhouse's layer ---------------------------
FROM ${BASE_IMAGE}
COPY --from=install /opt/envtiers/env /opt/envtiers/env
ENV PATH=/opt/envtiers/env/bin:$PATH \
    VIRTUAL_ENV=/opt/envtiers/env

# One image for every component: the operator and the pods it creates run
# `akeneo-connector <operator|receiver|worker|reconcile|replay>`.
#
# Supply chain: both stages start from python:3.11-slim pinned by digest (refresh it with
# `docker buildx imagetools inspect python:3.11-slim` and change both FROM lines together);
# runtime dependencies come only from requirements.lock, hash-checked, as wheels; the
# project is built with the hash-checked setuptools of requirements-build.lock and installed
# without dependencies. The runtime stage has no pip and no nats-server (local mode only).

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/akeneo \
 && /opt/akeneo/bin/pip install --require-hashes --only-binary=:all: --no-deps -r requirements.lock \
 && pip install --require-hashes --only-binary=:all: --no-deps -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY connector connector
COPY operator operator
COPY receiver receiver
COPY worker worker
COPY resync resync
COPY cli cli
COPY pim pim
RUN pip wheel --no-build-isolation --no-deps --no-index --wheel-dir /wheels . \
 && /opt/akeneo/bin/pip install --no-deps --no-index /wheels/akeneo_connector-*.whl \
 && /opt/akeneo/bin/pip check \
 && /opt/akeneo/bin/python -m pip uninstall --yes pip

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/akeneo/bin:$PATH
# Nothing installs at run time: the base image's pip, setuptools and wheel go.
RUN rm -rf /usr/local/bin/pip /usr/local/bin/pip3* \
    /usr/local/lib/python3.11/site-packages/pip \
    /usr/local/lib/python3.11/site-packages/pip-* \
    /usr/local/lib/python3.11/site-packages/setuptools \
    /usr/local/lib/python3.11/site-packages/setuptools-* \
    /usr/local/lib/python3.11/site-packages/_distutils_hack \
    /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
    /usr/local/lib/python3.11/site-packages/wheel \
    /usr/local/lib/python3.11/site-packages/wheel-* \
    /usr/local/lib/python3.11/ensurepip
COPY --from=build /opt/akeneo /opt/akeneo
WORKDIR /
# Non-root, matching the pods' securityContext (runAsNonRoot, read-only root filesystem).
USER 10001:10001
ENTRYPOINT ["akeneo-connector"]

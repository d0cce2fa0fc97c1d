# One image for every component: the operator and the pods it creates run
# `akeneo-connector <operator|receiver|worker|reconcile|replay>`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector connector
COPY operator operator
COPY receiver receiver
COPY worker worker
COPY pim pim
RUN pip install . && rm -rf /src
WORKDIR /
# Non-root, matching the pods' securityContext (runAsNonRoot, read-only root filesystem).
USER 10001:10001
ENTRYPOINT ["akeneo-connector"]

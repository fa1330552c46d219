# syntax=docker/dockerfile:1
# lockgate's controller image: `lockgate sync` / `watch` in a Kubernetes Job (see manifests/).

# Build stage: wheels for lockgate and every dependency, so the final image needs no compilers.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# git for gitpython (fetch, notes), ssh for ssh:// remotes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The numeric user the manifests run as (runAsUser / runAsGroup 10001).
RUN groupadd --gid 10001 lockgate \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin lockgate \
    && install -d -o 10001 -g 10001 /var/cache/lockgate
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels lockgate
# The root filesystem is read-only in the cluster: HOME (git's config) and the clone live on
# the emptyDir volumes mounted at /tmp and /var/cache/lockgate. Outside a cluster
# (`docker run`) the same paths are writable in the container.
ENV HOME=/tmp \
    LOCKGATE_CACHE_DIR=/var/cache/lockgate \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["lockgate"]
CMD ["sync"]

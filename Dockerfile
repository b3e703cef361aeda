# syntax=docker/dockerfile:1
# Images of docker-compose.yaml (docs/deployment.md): the official Airflow image extended with
# requirements.txt (+ constraints.txt, the full lock), the seaice-tasks package, dags/ and plugins/.
#
#   spark-dist    the official Apache Spark image: source of the Java runtime and of /opt/spark
#   base          Airflow 3.3.2 on Python 3.11 + Java + requirements.txt except torch + the Celery
#                 provider + seaice-tasks, dags/ and plugins/
#   airflow       base + the CPU build of torch (requirements.txt's pin): api-server, scheduler,
#                 dag-processor, triggerer, the `default` Celery worker (Spark drivers run there)
#   spark-worker  airflow + /opt/spark: a Spark standalone worker whose executors run the same
#                 Python at the same path as the driver (PYSPARK_PYTHON is the driver's)
#   gpu           base + the CUDA build of torch + Horovod (tools/build_horovod.sh): the `gpu` worker
#
# Built by `docker compose build`; never built by this project's CI (it has no container engine).

# Spark 4.2.0 = pyspark==4.2.0 of requirements.txt: driver, master and workers must run one Spark
# version.  The tag follows the scheme of every apache/spark 4.x release (e.g. the published
# 4.1.2-scala2.13-java21-ubuntu); the 4.2.0 tag itself was not pulled from here (no container
# engine).  Keep it equal to the pyspark pin, here and in docker-compose.yaml, when either moves.
FROM apache/spark:4.2.0-scala2.13-java21-ubuntu AS spark-dist

# The slim image: Airflow and its core providers only, so requirements.txt + constraints.txt decide
# every other package (the full image's 30 extra providers would pull their own pins).
FROM apache/airflow:slim-3.3.2-python3.11 AS base
USER root
# procps: `ps` for Spark's launcher scripts
RUN apt-get update \
    && apt-get install -y --no-install-recommends procps \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
# spark-submit (the driver runs in the Airflow worker, client mode) needs Java 17+
COPY --from=spark-dist /opt/java/openjdk /opt/java/openjdk
ENV JAVA_HOME=/opt/java/openjdk \
    PATH="${PATH}:/opt/java/openjdk/bin"
RUN mkdir -p /opt/seaice/scratch && chown -R airflow:0 /opt/seaice
USER airflow
WORKDIR /opt/seaice
COPY --chown=airflow:0 requirements.txt constraints.txt ./
# torch is left to the next stages (CPU build for airflow/spark-worker, CUDA build for gpu).  The
# Celery provider (CeleryExecutor) is not in requirements.txt: the local stack runs LocalExecutor.
# `pip install --dry-run -c constraints.txt apache-airflow==3.3.2 apache-airflow-providers-celery==3.26.0`
# resolves without changing any locked package and adds exactly the pins below.
RUN grep -v '^torch==' requirements.txt > /tmp/requirements-without-torch.txt \
    && pip install --no-cache-dir -r /tmp/requirements-without-torch.txt -c constraints.txt \
        "apache-airflow-providers-celery==3.26.0" "celery==5.6.3" "kombu==5.6.2" "redis==6.4.0" \
        "flower==2.2.0" "amqp==5.4.2" "billiard==4.3.2" "vine==5.1.0" \
    && rm /tmp/requirements-without-torch.txt
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 seaice_tasks ./seaice_tasks
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins

FROM base AS airflow
# the CPU wheel of requirements.txt's torch pin (PyPI's Linux wheel of the same version is the CUDA
# build, gigabytes of libraries no CPU worker uses); `==2.13.0` matches `2.13.0+cpu`
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --extra-index-url "${TORCH_CPU_INDEX_URL}" -c constraints.txt \
        "$(grep '^torch==' requirements.txt)"

FROM airflow AS spark-worker
COPY --from=spark-dist --chown=airflow:0 /opt/spark /opt/spark
ENV SPARK_HOME=/opt/spark \
    SPARK_WORKER_DIR=/opt/seaice/spark-work

FROM base AS gpu
USER root
# compilers for Horovod's C++ extension
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow
# The GPU image differs from requirements.txt on purpose: its torch is the CUDA build of the same
# version (the default index's Linux wheel, with its nvidia-* libraries).  TORCH_GPU_INDEX_URL picks
# another CUDA variant (a PyTorch wheel index matching the hosts' driver); TORCH_GPU_VERSION another
# version (then Horovod is rebuilt against it).
ARG TORCH_GPU_INDEX_URL=
ARG TORCH_GPU_VERSION=
RUN spec="$(grep '^torch==' requirements.txt)"; \
    if [ -n "${TORCH_GPU_VERSION}" ]; then spec="torch==${TORCH_GPU_VERSION}"; fi; \
    grep -v '^torch==' constraints.txt > /tmp/constraints-without-torch.txt \
    && pip install --no-cache-dir ${TORCH_GPU_INDEX_URL:+--extra-index-url "${TORCH_GPU_INDEX_URL}"} \
        -c /tmp/constraints-without-torch.txt "${spec}" \
    && rm /tmp/constraints-without-torch.txt
# Horovod 0.28.1 from source (tools/build_horovod.sh).  Default: PyTorch + Gloo (CPU all-reduce);
# HOROVOD_GPU_OPERATIONS=NCCL needs the CUDA toolkit (nvcc, headers) in the image, which this Airflow
# base lacks.  torchrun (backend `torchrun`) uses NCCL from the torch wheel without it.
ARG HOROVOD_GPU_OPERATIONS=
COPY --chown=airflow:0 tools/build_horovod.sh tools/
RUN if [ -z "${HOROVOD_GPU_OPERATIONS}" ]; then unset HOROVOD_GPU_OPERATIONS; fi; \
    SEAICE_WHEEL_CACHE=/tmp/horovod-wheels bash tools/build_horovod.sh /home/airflow/.local \
    && rm -rf /tmp/horovod-wheels

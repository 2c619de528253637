# syntax=docker/dockerfile:1
# kettle as a Lambda container image: the template's PackageType=Image route.
#
#   docker build --platform linux/arm64 -t kettle:arm64 .          # or linux/amd64 for x86_64
#   docker build --build-arg MODEL=BAAI/bge-small-en-v1.5 ...       # another model
#
# Push it to ECR and deploy with PackageType=Image ImageUri=<repo>:<tag> (same Architecture).
# One image serves every function: template.yaml sets ImageConfig.Command per function
# (handler.app.api_handler, s3_handler, batch_handler, dispatch_handler).
#
# It installs what the zip route's layers hold, from the same files: layers/runtime/requirements.txt
# (the pinned, --no-deps closure) pruned by layers/prune.py, and models baked by models_bake into
# /opt/models, where the model layer would mount them.

# The same Python as the zip route's default (template.yaml PythonRuntime, layers/Makefile
# PYTHON_VERSION); python:3.12 works too.
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.13

# ---- bake: fetch, convert, quantize and check the models (needs kettle's bake extra) ----------
FROM ${BASE_IMAGE} AS bake
ARG MODEL=sentence-transformers/all-MiniLM-L6-v2
ARG SPARSE_MODEL=
ARG RERANK_MODEL=
ARG IMAGE_MODEL=
ARG LATE_INTERACTION_MODEL=
ARG QUANTIZE=int8
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kettle/ kettle/
COPY models_bake/ models_bake/
RUN pip install --no-cache-dir ".[bake]"
RUN for m in ${MODEL} ${SPARSE_MODEL} ${RERANK_MODEL} ${IMAGE_MODEL} ${LATE_INTERACTION_MODEL}; do \
      python -m models_bake "$m" --out /opt/models --quantize "${QUANTIZE}" --cache /tmp/bake-cache \
      || exit 1; \
    done

# ---- the function image -----------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG MODEL=sentence-transformers/all-MiniLM-L6-v2
ARG SPARSE_MODEL=
ARG RERANK_MODEL=
ARG IMAGE_MODEL=
ARG LATE_INTERACTION_MODEL=
COPY layers/runtime/requirements.txt layers/runtime/requirements-image.txt layers/prune.py /tmp/layers/
RUN pip install --no-cache-dir --no-deps --only-binary=:all: \
      --target "${LAMBDA_TASK_ROOT}" -r /tmp/layers/requirements.txt \
      $([ -n "${IMAGE_MODEL}" ] && echo "-r /tmp/layers/requirements-image.txt") \
    && python /tmp/layers/prune.py "${LAMBDA_TASK_ROOT}" \
    && rm -rf /tmp/layers
COPY --from=bake /opt/models /opt/models
COPY kettle/ ${LAMBDA_TASK_ROOT}/kettle/
COPY handler/ ${LAMBDA_TASK_ROOT}/handler/
# The task root is read-only at run time: ship the byte code instead of compiling it per cold start.
RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash "${LAMBDA_TASK_ROOT}" >/dev/null
ENV KETTLE_MODELS_DIR=/opt/models \
    KETTLE_MODEL=${MODEL} \
    KETTLE_SPARSE_MODEL=${SPARSE_MODEL} \
    KETTLE_RERANK_MODEL=${RERANK_MODEL} \
    KETTLE_IMAGE_MODEL=${IMAGE_MODEL} \
    KETTLE_LATE_INTERACTION_MODEL=${LATE_INTERACTION_MODEL}
CMD ["handler.app.api_handler"]

# crowdwatch: CPU-only container image.
#
# Build (from the repository root):
#   docker build -t crowdwatch .                                          # lean (default)
#   docker build --build-arg CROWDWATCH_EXTRAS=ultralytics -t crowdwatch:full .   # full
#
# The lean image is the OpenVINO runtime with the model shipped in the package
# (yolo11n_int8_openvino_model, see models/README.md): no torch, no ultralytics. The full
# image adds the [ultralytics] extra (ultralytics, CPU torch and torchvision) for .pt/.onnx
# models, model export and the benchmark's baseline; it is several times larger.
#
# Run: mount a folder holding crowdwatch.yaml on /config (the default command reads
# /config/crowdwatch.yaml); the default model needs no mount. Another config name: pass
# `run --config /config/NAME.yaml`. Another model: mount its folder on /models and name it in
# detector.model:
#   docker run --rm -v "$PWD/site:/config:ro" -p 9108:9108 crowdwatch
#   docker run --rm -v "$PWD/configs:/config:ro" -v /path/to/models:/models:ro \
#       -p 9108:9108 crowdwatch run --config /config/example.yaml
#
# Inside the container the config must keep metrics.host at 0.0.0.0 (the default) and
# metrics.port at 9108, or `-p` and the HEALTHCHECK below cannot reach /metrics.
# Nothing is downloaded at run time.

FROM python:3.11-slim

# Fail a RUN whose pipe fails anywhere, not only at its last command.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# "" (lean) or "ultralytics" (full: adds ultralytics, torch and torchvision).
ARG CROWDWATCH_EXTRAS=""

# 1. Full image only: torch and torchvision from PyTorch's CPU wheel index, pinned as in
#    pyproject.toml. Installed first so that the project install below finds them satisfied
#    (2.14.1+cpu matches ==2.14.1) and never pulls the multi-GB CUDA build from PyPI.
RUN if [ "$CROWDWATCH_EXTRAS" = "ultralytics" ]; then \
        pip install --index-url https://download.pytorch.org/whl/cpu \
            torch==2.14.1 torchvision==0.29.1; \
    elif [ -n "$CROWDWATCH_EXTRAS" ]; then \
        echo "CROWDWATCH_EXTRAS must be empty or ultralytics" >&2; exit 1; \
    fi

# 2. The project, with every other dependency pinned by constraints.txt. The torch,
#    torchvision, triton, cuda-* and nvidia-* pins belong to the CUDA build and are
#    filtered out (torch, if wanted, is already installed above), except nvidia-ml-py:
#    ultralytics requires it, and it is a small pure-Python binding, not CUDA.
# 3. Swap opencv-python for opencv-python-headless of the same version. crowdwatch (and
#    ultralytics) require opencv-python, whose GUI build needs X11/OpenGL libraries
#    (libGL.so.1) that this slim image lacks; the headless build needs none and provides the
#    same cv2 module. Both write the same cv2/ folder, so the GUI build is uninstalled first
#    and the headless one installed without dependencies. `pip check` will therefore
#    report that opencv-python is missing: expected, and harmless.
#    Steps 2 and 3 share one layer so the GUI build never ships in the image.
WORKDIR /tmp/crowdwatch-build
COPY pyproject.toml constraints.txt README.md LICENSE* ./
COPY src ./src
RUN { grep -viE '^((torch|torchvision|triton)==|cuda-|nvidia-)' constraints.txt; \
      grep -iE '^nvidia-ml-py==' constraints.txt; } > /tmp/constraints-cpu.txt \
    && pip install --constraint /tmp/constraints-cpu.txt ".${CROWDWATCH_EXTRAS:+[$CROWDWATCH_EXTRAS]}" \
    && OPENCV_VERSION="$(pip show opencv-python | sed -n 's/^Version: //p')" \
    && test -n "$OPENCV_VERSION" \
    && pip uninstall -y opencv-python \
    && pip install --no-deps "opencv-python-headless==${OPENCV_VERSION}" \
    && python -c "import cv2; from crowdwatch.detect.models import resolve_model; print('cv2', cv2.__version__, 'model', resolve_model('yolo11n_int8_openvino_model'))" \
    && if [ -n "$CROWDWATCH_EXTRAS" ]; then \
        python -c "import torch; assert not torch.cuda.is_available(); print('torch', torch.__version__)"; \
    fi \
    && rm -rf /tmp/crowdwatch-build /tmp/constraints-cpu.txt

# ultralytics (full image) reads these at import time (names as in ultralytics/utils/__init__.py):
#   YOLO_OFFLINE=1       no network checks, no downloads
#   YOLO_AUTOINSTALL=0   never pip-install missing packages at run time
#   YOLO_CONFIG_DIR      its settings folder; /tmp is writable for any user id
# CROWDWATCH_MODEL_DIR: where crowdwatch looks for detector.model given by name.
ENV YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    CROWDWATCH_MODEL_DIR=/models

# An unprivileged user with a fixed numeric id (runAsNonRoot-friendly; give mounted
# folders read access for uid 10001).
RUN groupadd --system --gid 10001 crowdwatch \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/crowdwatch \
        --shell /usr/sbin/nologin crowdwatch \
    && mkdir -p /config /models \
    && chown 10001:10001 /config /models

USER 10001:10001
WORKDIR /home/crowdwatch

VOLUME ["/config", "/models"]
EXPOSE 9108

# Healthy while /healthz answers 200: every camera loop still turns (a camera that is down
# still turns its loop; /readyz tells that apart). Model loading takes a few seconds, hence
# the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]

ENTRYPOINT ["crowdwatch"]
CMD ["run", "--config", "/config/crowdwatch.yaml"]

# sift serve in a container: `docker build -t sift .`, then
#   docker run --gpus all -p 8000:8000 -v /path/to/models:/models:ro sift --model /models/Qwen3-VL-Reranker-2B
# The build stage compiles the CLI with FFmpeg (video documents) and wgpu (Vulkan); the runtime
# stage holds the binary, FFmpeg's shared libraries and the Vulkan loader.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libavformat-dev libavcodec-dev libswscale-dev \
      libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sift-cli && strip target/release/sift

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libavformat59 libavcodec59 libswscale6 libvulkan1 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home sift
# With the NVIDIA Container Toolkit, `graphics` mounts the driver's Vulkan ICD into the
# container; without a GPU, `--device auto` runs on the CPU.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,graphics,utility
COPY --from=build /src/target/release/sift /usr/local/bin/sift
USER sift
EXPOSE 8000
ENTRYPOINT ["sift", "serve", "--host", "0.0.0.0", "--port", "8000"]

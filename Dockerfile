# One image for every callsense role (worker, dashboard, CLI). Embedded engines on CPU;
# a Riva server (GPU) is a separate service in docker-compose's `riva` profile.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e ".[riva,dashboard]"
# The Moonshine model (the default ASR engine) is converted once, into the image: every
# worker and dashboard replica starts with it instead of converting it on first use.
ENV CALLSENSE_MODEL_CACHE_DIR=/opt/callsense/models
RUN callsense asr build-moonshine
ENV CALLSENSE_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["callsense"]
CMD ["--help"]

# One image for every callsense role (worker, dashboard, CLI). Embedded engines on CPU;
# a Riva server (GPU) is a separate service in docker-compose's `riva` profile.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e ".[riva,dashboard]"
ENV CALLSENSE_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["callsense"]
CMD ["--help"]

# gpt2d: a static, CGO-free binary in a minimal image.
#
#   docker build -t gpt2d .
#   docker run --rm -v gpt2d-models:/models gpt2d weights fetch --model gpt2 --dir /models/gpt2     # once
#   docker run --rm -v gpt2d-models:/models gpt2d weights convert --from /models/gpt2               # once
#   docker run -d --name gpt2d -p 8000:8000 -v gpt2d-data:/data -v gpt2d-models:/models:ro gpt2d
#   docker exec -it gpt2d /gpt2d users create --username admin --role admin
#
# Weights are not baked in: they live in the /models volume (see
# deploy/README.md). The health check is `gpt2d healthcheck` (no shell or
# curl in the image): healthy once the model is loaded.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags '-s -w' -o /out/gpt2d ./cmd/gpt2d \
 && mkdir -p /out/data /out/models

# distroless/static: no shell, no package manager, CA certificates and
# /etc/passwd with the nonroot user (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gpt2d /gpt2d
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/models /models
USER 65532:65532
ENV GPT2D_ADDR=:8000 \
    GPT2D_DATA=/data/gpt2d.db \
    GPT2D_MODEL=/models/gpt2.gpt2d \
    GPT2D_MODELS_DIR=/models
VOLUME ["/data", "/models"]
EXPOSE 8000
STOPSIGNAL SIGTERM
# start-period covers loading the model (and a first-use fetch with
# --model NAME); /health is 503 until the model is loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["/gpt2d", "healthcheck"]
ENTRYPOINT ["/gpt2d"]
CMD ["serve"]

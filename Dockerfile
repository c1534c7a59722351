# gpt2d: a static, CGO-free binary in a minimal image.
#
#   docker build -t gpt2d .
#   docker run --rm -p 8000:8000 -v gpt2d-data:/data -v "$PWD/models:/models:ro" \
#     -e GPT2D_ADMIN_USERNAME=admin -e GPT2D_ADMIN_PASSWORD \
#     gpt2d serve --model /models/gpt2.gpt2d
#
# Weights are not baked in: mount them read-only (see `gpt2d weights`).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags '-s -w' -o /out/gpt2d ./cmd/gpt2d \
 && mkdir -p /out/data

# distroless/static: no shell, no package manager, CA certificates and
# /etc/passwd with the nonroot user (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gpt2d /gpt2d
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV GPT2D_ADDR=:8000 \
    GPT2D_DATA=/data/gpt2d.db \
    GPT2D_MODEL=/models/gpt2.gpt2d
VOLUME ["/data"]
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/gpt2d"]
CMD ["serve"]

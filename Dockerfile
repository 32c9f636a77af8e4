# syntax=docker/dockerfile:1
# rdev's images. The default target is the one to deploy: a static binary on
# a distroless, non-root base (about 20 MB). The `local` target adds a Debian
# userland for the local executor (commands run inside rdev's own
# container), as compose.yaml uses it.
#
#   docker build -t rdev .
#   docker build --target local -t rdev:local .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# modernc.org/sqlite is pure Go: the binary needs no C library.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/rdev ./cmd/rdev

FROM debian:bookworm-slim AS local
RUN useradd --uid 65532 --user-group --create-home --home-dir /home/rdev rdev \
 && mkdir -p /data /workspace && chown rdev:rdev /data /workspace
COPY --from=build /out/rdev /usr/local/bin/rdev
USER 65532:65532
WORKDIR /home/rdev
# In a container the port mapping, not the address, decides who reaches rdev.
ENV RDEV_DATA_DIR=/data RDEV_WORKSPACE=/workspace RDEV_EXECUTOR=local RDEV_HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["rdev"]
CMD ["serve"]

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rdev /rdev
USER 65532:65532
ENV RDEV_HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["/rdev"]
CMD ["serve"]

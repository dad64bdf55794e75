# syntax=docker/dockerfile:1
# pgcdc container image: a static binary on a distroless base, running as a non-root user.
#
#   docker build -t pgcdc --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -e PGCDC_POSTGRES_DSN=... -e PGCDC_KAFKA_BROKERS=... -e PGCDC_KAFKA_TOPIC_PREFIX=app -p 9187:9187 pgcdc
#
# Build stage: the Go version of go.mod; CGO off for a static binary that needs no libc.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/pgcdc/pgcdc/pkg/version.Version=${VERSION}" \
      -o /out/pgcdc ./cmd/pgcdc

# Run stage: no shell, no package manager; CA certificates and /tmp (the default spool directory)
# included. UID 65532 is distroless's "nonroot".
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pgcdc /usr/local/bin/pgcdc
USER 65532:65532
# Operations endpoint: /metrics, /healthz, /readyz (metrics.listen, default :9187).
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/pgcdc"]
CMD ["run"]

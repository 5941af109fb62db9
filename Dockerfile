# Multi-stage build of the worker: Go 1.26, then a static, non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/taskhost/taskhost/cmd.Version=${VERSION}" \
    -o /out/worker ./cmd/worker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /worker
COPY config.yaml /config.yaml
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/worker", "-config", "/config.yaml"]

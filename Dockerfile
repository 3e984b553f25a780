# weft's image: a static binary on distroless, as a non-root user.
#   docker build -t weft:latest .
# (kind: kind load docker-image weft:latest; minikube: minikube image load weft:latest)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/weft ./cmd/weft

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/weft /usr/local/bin/weft
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/weft"]

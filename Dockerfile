# syntax=docker/dockerfile:1
# svclab in a container: the container's own network namespace plays the lab's "host".
#   docker build -t svclab .
#   docker run --rm -it --privileged -p 8080:8080 svclab
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/svclab .

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 conntrack dnsutils curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/svclab /usr/local/bin/svclab
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/svclab"]
CMD ["up", "--demo", "--listen", "0.0.0.0:8080"]

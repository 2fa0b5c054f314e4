# syntax=docker/dockerfile:1

# ---- build ----
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Dependencies first so this layer is cached until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/relay ./cmd/relay \
 && mkdir -p /out/spool

# ---- run ----
# distroless/static has CA certificates (for rediss://, SMTP TLS, Slack),
# /usr/share/zoneinfo (for RELAY_TIMEZONE and per-exam zones) and a
# "nonroot" user (uid 65532) with a writable home; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/relay /relay
# The spool keeps registrations while Redis is away: mount a volume here.
# Created owned by nonroot so a fresh named volume inherits that owner.
COPY --from=build --chown=65532:65532 /out/spool /home/nonroot/spool
# With no RELAY_SMTP_URL emails go to ./outbox: keep the working directory
# somewhere the nonroot user can write.
WORKDIR /home/nonroot
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/relay"]
CMD ["run"]

# baitoru-cdc container image. Like Prometheus's image, it does not compile
# anything: `make image` builds the static binaries (CGO_ENABLED=0) and puts
# them, with the build host's CA bundle and a passwd entry for the non-root
# user, in the build context (bin/image/), then runs
#
#     podman build --file Dockerfile --tag localhost/baitoru-cdc:dev bin/image
#
# (CONTAINER=docker uses Docker instead). The result is FROM scratch: no
# shell, no package manager, only
#
#     /usr/local/bin/baitoru-cdc          the command (entrypoint)
#     /usr/local/bin/baitoru-cdc-lambda   the sink as an AWS Lambda function
#     /etc/ssl/certs/ca-certificates.crt  CA bundle for TLS to AWS and PostgreSQL
#     /etc/passwd, /etc/group             user and group baitoru (65532)
#
# Run the connector with the configuration mounted read-only:
#
#     docker run -v ./config.yaml:/etc/baitoru-cdc/config.yaml:ro -p 9090:9090 IMAGE
#     docker run -v ./config.yaml:/etc/baitoru-cdc/config.yaml:ro -p 8080:8080 IMAGE sink --config /etc/baitoru-cdc/config.yaml
#
# For Lambda, set the function's image entrypoint to
# /usr/local/bin/baitoru-cdc-lambda and BAITORU_CDC_CONFIG to the file.
FROM scratch

# The binaries carry the same values (baitoru-cdc version); make image
# passes them.
ARG VERSION=dev
ARG COMMIT=
ARG BUILD_DATE=
LABEL org.opencontainers.image.title="baitoru-cdc" \
      org.opencontainers.image.description="PostgreSQL logical replication to AWS SNS, and signed delivery to Kobot" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}"

COPY passwd group /etc/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY baitoru-cdc baitoru-cdc-lambda /usr/local/bin/

# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# metrics.listen (connector) and sink.api.listen (sink), as in config.yaml.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/baitoru-cdc"]
CMD ["run", "--config", "/etc/baitoru-cdc/config.yaml"]

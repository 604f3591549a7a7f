# The connector's image for ECS: the image `make image` builds, with
# deploy/config.yaml as its configuration. The build context is deploy/:
#
#     docker build --file deploy/connector.Dockerfile --build-arg BASE=baitoru-cdc:build --tag IMAGE deploy
ARG BASE=localhost/baitoru-cdc:dev
FROM ${BASE}
COPY config.yaml /etc/baitoru-cdc/config.yaml

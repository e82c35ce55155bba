# The skein worker image (issue 17): `skein worker` in an ECS Fargate task, for datasets too
# large for the migrate Lambda (infra/README.md, "Large jobs on Fargate").
#
# scripts/package-worker builds the binary the way the Lambdas are built (cargo-lambda and
# zig, aarch64-unknown-linux-gnu, an old glibc), stages it as target/worker-image/skein (the
# only file .dockerignore lets into the build context) and prints the commands:
#   docker build --platform linux/arm64 -t <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> .
# The image has no shell and no package manager: distroless cc is glibc, libgcc and CA
# certificates, all the binary needs. What the task definition relies on (platform, user,
# entrypoint, command, the scratch volume) is checked against infra/template.yaml by
# scripts/check-infra dockerfile.

# The binary inside is aarch64, so the image is linux/arm64 whatever the build host is
# (the task definition's RuntimePlatform is ARM64/LINUX).
# hadolint ignore=DL3029
FROM --platform=linux/arm64 gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="skein worker" \
      org.opencontainers.image.description="skein worker: one large dataset migration job per ECS task (SKEIN_JOB, SKEIN_TASK_TOKEN)"

# Root owns the binary; the user runs it and cannot change it.
COPY --chmod=0555 target/worker-image/skein /skein

# distroless's nonroot user, by number (the task definition's User is the same).
USER 65532:65532

# Spill and staging space. WORKDIR after USER makes BuildKit create /scratch owned by that
# user; at run time ECS copies a VOLUME directory, owner included, into the task's bind
# mount at the same path, the only writable place on the read-only root filesystem
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html).
WORKDIR /scratch
VOLUME ["/scratch"]

ENTRYPOINT ["/skein"]
CMD ["worker"]

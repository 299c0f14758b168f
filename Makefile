# The two commands of the README. Both install what they need first (idempotent).
export PATH := $(CURDIR)/target/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

TARGET := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test bench fuzz image

## 100,000 random and malformed requests against every endpoint and server function
fuzz:
	FUZZ_CASES=100000 FUZZ_SEED=random cargo test --test api fuzz -- --nocapture

## The dashboard on SQLite with demo data at http://127.0.0.1:3000. Built like the tests
## build it (the dev profile: no LTO, incremental), so a cold start compiles the server
## once for both `make run` and `make test`; `make bench` builds the optimised release.
run:
	./.ci/setup
	./.ci/build
	LEPTOS_SITE_ROOT=target/site $(TARGET)/debug/release serve --demo --database-url sqlite:release.db

## Every test (unit, property, storage on SQLite and PostgreSQL, API, pages, browser)
test:
	./.ci/test

## The benchmark (see BENCHMARKS.md)
bench:
	./.ci/setup
	command -v wrk >/dev/null && command -v nginx >/dev/null || (apt-get install -y -q wrk nginx || (apt-get update -q && apt-get install -y -q wrk nginx))
	./.ci/build --release
	cargo build --release --bin release-bench
	BENCH_SERVER=$(TARGET)/release/release $(TARGET)/release/release-bench

## The OCI image (deploy/Containerfile): a static server and the site, no base image
image:
	./.ci/image localhost/release:latest

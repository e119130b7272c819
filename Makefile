# Sluice — the commands the README names. `make test` is what CI runs (.ci/run).
SWIFT ?= swift

.PHONY: test deps build release bench clean

## Install what is missing, build, and run every test.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Microbenchmarks (package-benchmark, Benchmarks/Package.swift).
bench: deps
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark

clean:
	rm -rf .build Benchmarks/.build

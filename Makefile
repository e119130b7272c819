# Sluice — the commands the README names. `make test` is what CI runs (.ci/run).
SWIFT ?= swift

.PHONY: test deps build release bench clean generate

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

## Regenerate the wire codec from Kafka's schemas (development checkouts: needs ../shared).
SCHEMAS ?= ../shared/kafka-protocol
generate:
	$(SWIFT) run MessageGenerator $(SCHEMAS) Sources/KafkaProtocol/Generated Tests/KafkaProtocolTests/Generated

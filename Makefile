# Sluice — the commands the README names. `make test` is what CI runs (.ci/run).
SWIFT ?= swift

.PHONY: test deps build release bench clean generate fuzz fuzz-build fuzz-smoke run interop chaos bench-deps bench-micro experiment sim zero-copy rdkafka-suite

## Install what is missing, build, and run every test.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	$(MAKE) --no-print-directory interop
	$(MAKE) --no-print-directory fuzz-smoke

## Real clients (kcat, confluent-kafka, kafka-python, aiokafka) against the real server.
interop: deps
	$(SWIFT) build --product sluice
	.venv/bin/python -m pytest -q -c Tests/Interop/pytest.ini Tests/Interop

## Build a release binary and start a single-node broker on 127.0.0.1:9092 (data in /tmp/sluice-logs).
run: deps
	$(SWIFT) build -c release --product sluice
	.build/release/sluice server config/server.properties

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## The fault-injection harness, long run (Tests/Chaos/chaos.py; the short run is in `make test`).
## CHAOS_SEED replays a run; the summary JSON is the last line, the history in CHAOS_OUT;
## CHAOS_ARGS passes more options, e.g. CHAOS_ARGS="--override sluice.io.buffered.submit=ring".
CHAOS_SECONDS ?= 600
CHAOS_SEED ?= $(shell date +%s)
CHAOS_OUT ?= .build/chaos
chaos: deps
	$(SWIFT) build --product sluice
	.venv/bin/python Tests/Chaos/chaos.py --seed $(CHAOS_SEED) --duration $(CHAOS_SECONDS) --out $(CHAOS_OUT) $(CHAOS_ARGS)

## librdkafka's own regression suite against fresh Sluice nodes (a librdkafka source tree is needed:
## LIBRDKAFKA_SRC); RDK_TESTS picks tests ("0011 0030"), RDK_REPEAT repeats each.
rdkafka-suite: deps
	$(SWIFT) build -c release --product sluice
	.venv/bin/python scripts/librdkafka-suite.py $(RDK_TESTS)

## The simulated-disk storage test for many seeds (64 run in `make test`); SIM_SEED=S replays one.
SIM_SEEDS ?= 2000
sim: deps
	SLUICE_SIM_SEEDS=$(SIM_SEEDS) $(if $(SIM_SEED),SLUICE_SIM_SEED=$(SIM_SEED)) $(SWIFT) test --filter SimulatedDiskTests

## Sluice next to Tansu through the same kperf (librdkafka) workloads, plus fio and loopback
## limits; writes docs/benchmarks.md with plots. BENCH_SCALE=10 divides the record counts.
bench: deps bench-deps
	$(SWIFT) build -c release --product sluice
	.venv/bin/python Benchmarks/scripts/compare.py

bench-deps:
	@command -v fio >/dev/null && [ -e /usr/include/librdkafka/rdkafka.h ] || \
	  (apt-get install -y -q fio librdkafka-dev >/dev/null || (apt-get update -q && apt-get install -y -q fio librdkafka-dev))
	@.venv/bin/python -c "import matplotlib, yaml" 2>/dev/null || .venv/bin/pip install -q -r Benchmarks/requirements.txt
	@$(MAKE) --no-print-directory -C Benchmarks/kperf >/dev/null

## Disk-layout experiments: a plan of knob sets x workloads -> a report directory (report.md,
## results.json, plots). PLAN is a YAML or JSON plan (docs/experiments/README.md); OUT the report
## directory (default experiments/<plan>-<time>); EXPERIMENT_DIR the disk under test (/var/tmp).
PLAN ?= docs/experiments/io-mode-and-durability.yaml
experiment: deps bench-deps
	$(SWIFT) build -c release --product sluice
	.venv/bin/python Benchmarks/scripts/experiment.py $(PLAN) $(if $(OUT),--out $(OUT))

## Bytes the broker copies in user space while producing and consuming, counted by an
## LD_PRELOAD memcpy/memmove tracer (Benchmarks/scripts/copytrace.c); writes docs/zero-copy.md.
zero-copy: deps bench-deps
	$(SWIFT) build -c release --product sluice
	.venv/bin/python Benchmarks/scripts/zero-copy.py

## Microbenchmarks (package-benchmark, Benchmarks/Package.swift).
bench-micro: deps
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark

clean:
	rm -rf .build Benchmarks/.build

## Regenerate the wire codec from Kafka's schemas (development checkouts: needs ../shared).
SCHEMAS ?= ../shared/kafka-protocol
generate:
	$(SWIFT) run MessageGenerator $(SCHEMAS) Sources/KafkaProtocol/Generated Tests/KafkaProtocolTests/Generated docs/protocol-coverage.md

## libFuzzer targets (Fuzz/Package.swift): FuzzRequest (frames, headers, every request and
## response body), FuzzRecordBatch (batch splitting, CRC, records, decompression) and FuzzBroker
## (the whole request path: decode, handler and storage on an in-process broker; leak detection
## is off for it because the broker keeps state across inputs by design).
## `make fuzz` instruments every Swift module for coverage (a long build, once); the smoke run
## inside `make test` instruments only the targets, which builds much faster.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS = FuzzRequest FuzzRecordBatch FuzzBroker
FUZZ_SCRATCH ?= .build-fuzz
FUZZ_FLAGS ?= -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
fuzz-build:
	@# SwiftPM does not notice files added to a path dependency (the main package) in a scratch
	@# directory it has planned before; dropping the cached plan makes it look again.
	@rm -f $(FUZZ_SCRATCH)/release.yaml $(FUZZ_SCRATCH)/release/description.json
	$(SWIFT) build -c release --package-path Fuzz --scratch-path $(FUZZ_SCRATCH) $(FUZZ_FLAGS)

fuzz: deps fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_SCRATCH)/corpus/$$t; \
	  echo "== $$t for $(FUZZ_SECONDS)s"; \
	  leaks=1; [ $$t = FuzzBroker ] && leaks=0; \
	  ASAN_OPTIONS=detect_leaks=$$leaks $(FUZZ_SCRATCH)/release/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -print_final_stats=1 -detect_leaks=$$leaks \
	    $(FUZZ_SCRATCH)/corpus/$$t Fuzz/corpus/$$(echo $$t | sed 's/Fuzz//' | tr A-Z a-z) || exit 1; \
	done

## A few seconds per target, as part of `make test`.
fuzz-smoke:
	@mkdir -p .build-fuzz-smoke
	@if $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10 FUZZ_SCRATCH=.build-fuzz-smoke FUZZ_FLAGS= SWIFT=$(SWIFT) > .build-fuzz-smoke/smoke.log 2>&1; then \
	  grep -E "^==|^Done" .build-fuzz-smoke/smoke.log; \
	else \
	  tail -40 .build-fuzz-smoke/smoke.log; echo "fuzz smoke run FAILED"; exit 1; \
	fi

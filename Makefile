# KCK for Go: the project's front door. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin
NODES ?= 1
FUZZTIME ?= 30s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: run
run: ## Start the gateway with the demo products on the embedded store (go run .)
	$(GO) run .

# The suite runs against real services: PostgreSQL (installed and started when
# absent), a 3-node Cassandra cluster (reused when one runs, started otherwise)
# and a NATS server for the change bus (built from its Go module, started when
# none answers).
# The e2e package runs last, alone: its node-loss test stops a Cassandra node,
# which would reset the connections of tests running beside it. Test artefacts
# (the browser tests' screenshots, t.ArtifactDir) are kept in .test-artifacts/.
.PHONY: test
test: lint check-generate check-codegen check-manifests examples image-test wrk ## The whole suite: lint, generated code, go test -race ./... (e2e last), benchmarks once, the fault suite (CI form)
	pg=$$(./scripts/postgres/up.sh) && cass=$$(./scripts/cassandra/ensure.sh 3) && bus=$$(./scripts/nats/ensure.sh) && \
		export KCK_POSTGRES_URL=$$pg KCK_CASSANDRA_HOSTS=$$cass KCK_BUS_URL=$$bus && \
		mkdir -p .test-artifacts && \
		$(GO) test -race -count=1 -timeout 20m -artifacts -outputdir $(CURDIR)/.test-artifacts $$($(GO) list ./... | grep -v /e2e$$) && \
		$(GO) test -race -count=1 -timeout 20m ./e2e/ && \
		$(MAKE) --no-print-directory bench-smoke && \
		$(MAKE) --no-print-directory faults-ci KCK_FAULTS_CASSANDRA_BASE=0 KCK_FAULTS_CASSANDRA_RUN_DIR=$(CURDIR)/.cache/cassandra/run

# Every Go benchmark once, as a smoke test (not timed: -benchtime 1x, and the
# Cassandra warming benchmark on 50 keys); `make bench` takes the figures. Only
# the packages that have benchmarks: `./...` would link and start every test
# binary (their TestMains build the kck binary) to run nothing.
BENCH_PKGS = $$(grep -rl --include='*_test.go' -e '^func Benchmark' --exclude-dir=node_modules --exclude-dir=examples --exclude-dir=.cache . | xargs -n1 dirname | sort -u)
.PHONY: bench-smoke
bench-smoke: ## Every Go benchmark run once (a smoke test, not a measurement)
	pg=$$(./scripts/postgres/up.sh) && cass=$$(./scripts/cassandra/ensure.sh 3) && bus=$$(./scripts/nats/ensure.sh) && \
		KCK_POSTGRES_URL=$$pg KCK_CASSANDRA_HOSTS=$$cass KCK_BUS_URL=$$bus WARM_KEYS=50 \
		$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS)

# wrk (Debian's) drives the peers harness's closed-loop points; its smoke test
# (bench/cmd/peers TestSmoke) runs in the suite.
.PHONY: wrk
wrk:
	@command -v wrk >/dev/null || { s=$$([ "$$(id -u)" = 0 ] || echo sudo); $$s apt-get install -y wrk >/dev/null 2>&1 || { $$s apt-get update >/dev/null && $$s apt-get install -y wrk >/dev/null; }; }

# Built before the tests (not while they run, on a busy machine); the browser
# tests call the same script, which skips an example whose build is newer than
# its sources.
.PHONY: examples
examples: ## Build the example apps in examples/ (npm ci + production build; skipped when up to date)
	for p in examples/*/package.json; do ./examples/build.sh $$(basename $$(dirname $$p)) >/dev/null || exit 1; done

# The fast tier: lint and every test that needs no service -- no PostgreSQL,
# Cassandra, NATS server of the machine's, or browser: the tests that need one
# are skipped (KCK_TEST_FAST=1, internal/scriptrun), and the service
# variables are unset so that none is used. The cache, the resolvers and the
# gateway run on the in-process store (cache/memory) and an in-process NATS.
.PHONY: check
check: lint ## The fast tier: lint and every test that needs no service (a few minutes; make test is the whole suite)
	env -u KCK_POSTGRES_URL -u KCK_CASSANDRA_HOSTS -u KCK_BUS_URL KCK_TEST_FAST=1 $(GO) test -race -count=1 ./...

.PHONY: lint
lint: staticcheck ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	cd examples/own-module && $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GOBIN)/staticcheck ./...

.PHONY: staticcheck
staticcheck:
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck -version | grep -q "$(STATICCHECK_VERSION:v%=%)" || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: generate
generate: ## Regenerate the gqlgen code from schema.graphqls (and examples/own-module's)
	$(GO) generate ./...
	cd examples/own-module && $(GO) generate ./...

.PHONY: check-generate
check-generate: ## Fail when go generate would change the generated code
	$(GO) generate ./...
	cd examples/own-module && $(GO) generate ./...
	@if [ -n "$$(git status --porcelain -- graph bench/cmd/gqlpeer/graph examples/own-module)" ]; then echo "generated code is out of date: run make generate and commit"; git status --porcelain -- graph bench/cmd/gqlpeer/graph examples/own-module; git diff -- graph bench/cmd/gqlpeer/graph examples/own-module | head -50; exit 1; fi

# examples/angular-apollo types its operations with GraphQL Code Generator's
# client preset, fed by `kck schema` (the schema the gateway serves, which a
# gateway run with --production does not show by introspection): the schema
# and the generated documents are committed, and check-codegen fails when
# either is out of date. Before `examples`: the app's build type-checks them.
CODEGEN_OUT = examples/angular-apollo/schema.graphql examples/angular-apollo/src/gql examples/react-codegen/schema.graphql
.PHONY: codegen
codegen: ## Regenerate examples/angular-apollo's schema.graphql (kck schema) and typed documents (GraphQL Code Generator)
	./examples/codegen.sh

.PHONY: check-codegen
check-codegen: codegen ## Fail when the example's schema or typed documents are out of date
	@if [ -n "$$(git status --porcelain -- $(CODEGEN_OUT))" ]; then echo "typed documents are out of date: run make codegen and commit"; git status --porcelain -- $(CODEGEN_OUT); git diff -- $(CODEGEN_OUT) | head -50; exit 1; fi

# The Kubernetes manifests (deploy/kubernetes), validated strictly against the
# Kubernetes API's schemas, offline: kubeconform built from its Go module, the
# schemas made from the OpenAPI document of the k8s.io/kubernetes module (both
# pinned in the script; cached in .cache/). Their consistency with the gateway
# (probes, drain, memory, variables) is tested by go test ./deploy/kubernetes/.
.PHONY: check-manifests
check-manifests: ## Validate deploy/kubernetes against the Kubernetes schemas (kubeconform, strict, offline)
	./deploy/kubernetes/validate.sh

# The container image (Containerfile): built with Debian's buildah, its build
# stage on this machine's Go (scripts/image/build.sh); image-test checks what
# it holds and runs the gateway from it with podman (deploy/image, build tag
# "image"). A warm build (Go's caches are cache mounts, kept between builds)
# takes seconds; a cold one, on a new machine, a few minutes.
IMAGE ?= localhost/kck:dev
.PHONY: image
image: ## Build the container image (IMAGE, default localhost/kck:dev) from the Containerfile with buildah (installed when absent)
	KCK_IMAGE=$(IMAGE) ./scripts/image/build.sh

.PHONY: image-test
image-test: image ## Test the image: its contents and defaults, and the gateway run from it with podman
	KCK_IMAGE=$(IMAGE) $(GO) test -tags image -count=1 ./deploy/image/

# Every fuzz target, as package:name. `make fuzz` fails on one that matches
# no fuzz test (go test -fuzz alone would fuzz nothing without a word).
FUZZ_TARGETS = \
	./primers/:FuzzParseKey \
	./primers/:FuzzParseSchedule \
	./gateway/:FuzzGraphQLRequest \
	./gateway/:FuzzUpdate \
	./gateway/:FuzzFetch \
	./gateway/:FuzzGraphQLGet \
	./gateway/:FuzzAcceptEncoding \
	./scheduler/:FuzzDomainMembers \
	./source/sqlproduct/:FuzzLoad \
	./cli/:FuzzParseConfig \
	./auth/:FuzzVerify \
	./cache/cassandra/:FuzzParseAddressMap \
	./cache/:FuzzParseChange \
	./trusted/:FuzzParse

.PHONY: fuzz
fuzz: check-fuzz ## Run every fuzz target for FUZZTIME each (default 30s)
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t"; $(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

.PHONY: check-fuzz
check-fuzz: ## Fail when a fuzz target of make fuzz names no fuzz test in its package
	@for t in $(FUZZ_TARGETS); do \
		$(GO) test -list "^$${t##*:}$$" $${t%%:*} | grep -qx "$${t##*:}" || { echo "make fuzz: $${t%%:*} has no fuzz test $${t##*:}"; exit 1; }; \
	done

.PHONY: bench
bench: ## Benchmarks and the load comparison; figures in bench/README.md
	./bench/run.sh

.PHONY: bench-peers
bench-peers: ## KCK against Yoga, Apollo, PostGraphile, gqlgen and static bytes; tables in bench/README.md
	./bench/peers/run.sh

# Cost per source change as gateways are added (issue 24): 1, 2, 4, 8 and 16
# gateways on one 3-node Cassandra, PostgreSQL and the NATS bus, against the
# code before the bus (built from SCALE_TODAY into .cache/scale). About 15
# minutes. The services named by KCK_POSTGRES_URL, KCK_CASSANDRA_HOSTS and
# KCK_BUS_URL are used when set, else the scripts start them. SCALE_FLAGS
# passes more flags (-d 10s, -gateways 1,4 ...); its smoke form is TestSmoke
# in bench/cmd/scale, run by make test.
SCALE_TODAY ?= fe0ff85
.PHONY: bench-scale
bench-scale: ## Cost per source change at 1 to 16 gateways (Cassandra, bus) against the code before the bus; tables in bench/README.md
	pg=$${KCK_POSTGRES_URL:-$$(./scripts/postgres/up.sh)} && cass=$${KCK_CASSANDRA_HOSTS:-$$(./scripts/cassandra/ensure.sh 3)} && \
		bus=$${KCK_BUS_URL:-$$(./scripts/nats/ensure.sh)} && \
		KCK_POSTGRES_URL=$$pg KCK_CASSANDRA_HOSTS=$$cass KCK_BUS_URL=$$bus \
		$(GO) run ./bench/cmd/scale -today-commit $(SCALE_TODAY) -readme bench/README.md $(SCALE_FLAGS)

.PHONY: postgres-up
postgres-up: ## Install (when absent) and start PostgreSQL; prints KCK_POSTGRES_URL
	@./scripts/postgres/up.sh

.PHONY: postgres-down
postgres-down: ## Stop the local PostgreSQL
	./scripts/postgres/down.sh

.PHONY: demo-postgres
demo-postgres: ## The gateway serving the demo from PostgreSQL (loads the demo tables)
	export KCK_POSTGRES_URL=$$(./scripts/postgres/up.sh) && $(GO) run . demo load && $(GO) run . serve

.PHONY: nats-up
nats-up: ## Build (from its Go module) and start a local NATS server for the change bus; prints KCK_BUS_URL
	@./scripts/nats/ensure.sh

.PHONY: nats-down
nats-down: ## Stop the local NATS server
	./scripts/nats/down.sh

.PHONY: cassandra-up
cassandra-up: ## Start a local Cassandra 5.0 (NODES=1 or NODES=3)
	./scripts/cassandra/up.sh $(NODES)

.PHONY: cassandra-status
cassandra-status: ## Which local Cassandra nodes run and answer CQL
	./scripts/cassandra/status.sh

.PHONY: cassandra-down
cassandra-down: ## Stop the local Cassandra nodes
	./scripts/cassandra/down.sh

# The fault suite (faults/, build tag "faults"): real gateway processes under a
# fixed-rate load against the suite's own 3-node Cassandra (127.0.0.11-13, run
# dir .cache/faults/cassandra), PostgreSQL (Debian cluster "faults", port 5440;
# "faultstore", port 5441, for the PostgreSQL store's scenarios) and NATS (port
# 4232), never the project's: it kills nodes, NATS and stops Postgres. `faults` writes
# docs/reliability.md; `faults-ci` runs the same assertions with a short soak.
# `make test` runs faults-ci last on the project's own cluster instead
# (KCK_FAULTS_CASSANDRA_BASE=0): nothing else uses it then, and CI saves
# starting a second one. The suite restarts every node it killed.
FAULTS_ENV = KCK_CASSANDRA_CACHE_DIR=$${KCK_CASSANDRA_CACHE_DIR:-$(CURDIR)/.cache/cassandra}
.PHONY: faults
faults: ## Fault scenarios under load; writes docs/reliability.md (full soak, 10 min)
	$(FAULTS_ENV) KCK_FAULTS_SOAK=$${KCK_FAULTS_SOAK:-10m} KCK_FAULTS_REPORT=$(CURDIR)/docs/reliability.md \
		$(GO) test -tags faults -count=1 -timeout 60m -v ./faults/

.PHONY: faults-ci
faults-ci: ## The fault scenarios, CI form (30 s soak, fixed phases halved), no report written
	$(FAULTS_ENV) KCK_FAULTS_SOAK=30s KCK_FAULTS_CI=1 $(GO) test -tags faults -count=1 -timeout 30m ./faults/

# rdev developer tasks. `make help` lists them; .ci/run (CI) uses the same
# targets. A line's "## text" is its help.

# Pinned tool versions: the only place they are set. bash scripts/install-tools.sh
# reads them from here. gqlgen's version comes from go.mod (see tools.go).
GOLANGCI_LINT_VERSION := v2.15.0
# The Claude Code CLI (npm @anthropic-ai/claude-code) that the agent tests run
# against a fake model API: bash scripts/install-claude.sh reads it from here.
CLAUDE_CODE_VERSION := 2.1.328

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.SUFFIXES:

GO ?= go
PKG ?= ./... ## Packages for test, vet, lint, bench (e.g. PKG=./domain/...)
TESTFLAGS ?= -race -count=1 ## Flags for `make test` and `make cover`
BENCHFLAGS ?= -benchmem ## Extra flags for `make bench` (e.g. -benchtime=2s -count=6)
LINTFLAGS ?= ## Extra flags for golangci-lint run (e.g. --fix)
FUZZTIME ?= 3s ## How long `make fuzz` runs each fuzz target
ARGS ?= ## Extra arguments for `rdev serve` in `make run`
RDEV_TOOLS_DIR ?= $(HOME)/.cache/rdev-tools ## Cache of pinned tools, one dir per version
TESTCLUSTER_DIR ?= $(CURDIR)/.testcluster ## Where make testcluster keeps its state

GOLANGCI_LINT := $(strip $(RDEV_TOOLS_DIR))/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

# Stamped into the binary (cmd/rdev: var version, commit string).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short --verify -q HEAD 2>/dev/null || echo unknown)
# -s -w drop the symbol table and DWARF (stack traces keep function names and
# lines); -trimpath keeps the builder's paths out of the binary.
LDFLAGS := -s -w -X main.version=$(strip $(VERSION)) -X main.commit=$(strip $(COMMIT))

.PHONY: help
help: ## List the targets and the variables they take
	@awk 'BEGIN { FS = ":.*## "; print "Usage: make TARGET [VAR=value ...]\n\nTargets:" } \
		/^[a-zA-Z0-9_.-]+:.*## / { printf "  %-15s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@awk 'BEGIN { print "\nVariables (default in brackets):" } \
		/^[A-Z_]+ *[?:]?=.*## / { \
			name = $$1; value = $$0; sub(/^[A-Z_]+ *[?:]?= */, "", value); \
			desc = value; sub(/^[^#]*## /, "", desc); sub(/ *##.*$$/, "", value); \
			printf "  %-15s %s [%s]\n", name, desc, value }' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/rdev, stripped (-trimpath -s -w), with the version and commit stamped in
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rdev ./cmd/rdev

.PHONY: run
run: build ## Build, then run `bin/rdev serve $(ARGS)` (SQLite and local executor by default)
	./bin/rdev serve $(ARGS)

.PHONY: test
test: ## Run the tests: go test $(TESTFLAGS) $(PKG); set RDEV_REQUIRE_SERVICES=1 to fail, not skip, without Postgres
	$(GO) test $(TESTFLAGS) $(PKG)

.PHONY: cover
cover: ## Run the tests with coverage into coverage.out and print the total
	$(GO) test $(TESTFLAGS) -covermode=atomic -coverprofile=coverage.out $(PKG)
	$(GO) tool cover -func=coverage.out | tail -n 1

.PHONY: hooks
hooks: ## Install the pre-commit hook (gofmt, go vet, golangci-lint on staged packages, generate drift)
	@hooks="$$(git rev-parse --git-path hooks)"; mkdir -p "$$hooks"; \
		ln -sf "$$(pwd)/scripts/pre-commit" "$$hooks/pre-commit"; \
		echo "hooks: $$hooks/pre-commit -> scripts/pre-commit"

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (after its seed corpus), one after another
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

.PHONY: bench
bench: ## Run the benchmarks, no tests: go test -run '^$' -bench . $(BENCHFLAGS) $(PKG)
	$(GO) test -run '^$$' -bench . $(BENCHFLAGS) $(PKG)

.PHONY: e2e
e2e: ## Run only the end-to-end tests (TestE2E_* in cmd/rdev: real binary, Node clients), after npm ci
	bash scripts/npm-ci.sh
	$(GO) test -count=1 -run '^TestE2E' ./cmd/rdev/...

.PHONY: graphiql-assets
graphiql-assets: ## Refresh GraphiQL's embedded files (resolvers/graphiql/assets, licences included) from npm at the versions in resolvers/graphiql/npm/package-lock.json
	cd resolvers/graphiql/npm && npm ci --no-audit --no-fund && node copy-assets.mjs

.PHONY: faults
faults: build ## Run the fault suite (internal/faulttest: its own PostgreSQL, real servers killed, the database restarted and paused); a SQLite disk filled up)
	RDEV_FAULTS=1 RDEV_FAULTS_BIN="$(CURDIR)/bin/rdev" $(GO) test -count=1 -v -timeout 12m -run . ./internal/faulttest/

.PHONY: testcluster
testcluster: ## Build (cached) and start etcd, kube-apiserver and kwok on loopback in $(TESTCLUSTER_DIR); `make testcluster-stop` stops them
	bash scripts/testcluster.sh start $(TESTCLUSTER_DIR)
.PHONY: testcluster-stop
testcluster-stop: ## Stop the test cluster in $(TESTCLUSTER_DIR)
	bash scripts/testcluster.sh stop $(TESTCLUSTER_DIR)

.PHONY: generate
generate: ## Regenerate graph/ and resolver stubs, and the benchmark's bare server (internal/barebench), with the gqlgen pinned in go.mod
	$(GO) run github.com/99designs/gqlgen generate
	cd internal/barebench && $(GO) run github.com/99designs/gqlgen generate

.PHONY: generate-check
generate-check: ## Run generate and fail, with the diff, if it changed any file
	@bash scripts/generate-check.sh

.PHONY: fmt
fmt: ## Format the hand-written Go files with gofmt -s
	@files="$$(bash scripts/gofiles.sh)"; [[ -z "$$files" ]] || gofmt -s -w $$files

.PHONY: fmt-check
fmt-check: ## Fail, listing them, if any hand-written Go file is not gofmt -s clean
	@files="$$(bash scripts/gofiles.sh)"; [[ -n "$$files" ]] || exit 0; \
	bad="$$(gofmt -s -l $$files)"; \
	if [[ -n "$$bad" ]]; then \
		echo "fmt-check: FAILED: these files need 'make fmt':" >&2; echo "$$bad" >&2; \
		gofmt -s -d $$bad >&2; exit 1; \
	fi; echo "fmt-check: all Go files are formatted"

.PHONY: vet
vet: ## Run go vet on $(PKG)
	$(GO) vet $(PKG)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (pinned, installed on first use) on $(PKG)
	$(GOLANGCI_LINT) run $(LINTFLAGS) $(PKG)

$(GOLANGCI_LINT):
	@GOLANGCI_LINT_VERSION=$(GOLANGCI_LINT_VERSION) RDEV_TOOLS_DIR="$(strip $(RDEV_TOOLS_DIR))" bash scripts/install-tools.sh >/dev/null

.PHONY: tools
tools: ## Install the pinned tools (golangci-lint) into $(RDEV_TOOLS_DIR) if missing
	@GOLANGCI_LINT_VERSION=$(GOLANGCI_LINT_VERSION) RDEV_TOOLS_DIR="$(strip $(RDEV_TOOLS_DIR))" bash scripts/install-tools.sh

.PHONY: claude
claude: ## Install the pinned Claude Code CLI (npm, about 360 MB) into $(RDEV_TOOLS_DIR) if missing, for the agent tests
	@CLAUDE_CODE_VERSION=$(CLAUDE_CODE_VERSION) RDEV_TOOLS_DIR="$(strip $(RDEV_TOOLS_DIR))" bash scripts/install-claude.sh

.PHONY: ci
ci: ## Run the CI script (.ci/run) locally
	bash .ci/run

.PHONY: clean
clean: ## Remove build and coverage output (not data/ or workspace/)
	rm -rf bin/ coverage.out coverage.html

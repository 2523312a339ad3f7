# lbd — run `make help` for the targets.
# One version for the binary and the packages (hack/version.sh): X.Y.Z on
# a tag, X.Y.Z+gitN.HASH after one, 0.1.0~gitN.HASH before the first.
VERSION     ?= $(shell hack/version.sh)
GO          ?= go
LDFLAGS     := -s -w -X main.version=$(VERSION)
# No DWARF from the compiler: -s -w drops it at the link anyway. Saves
# about 7 % of a cold compile, and hack/kube-bins.sh builds kube-apiserver
# with the same flag, so the packages both link are compiled once.
GCFLAGS     := all=-dwarf=false
PREFIX      ?= /usr/local
CONFIG      ?= etc/lbd.yaml
# Pinned tools, run through the Go module proxy.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
MODERNIZE   := golang.org/x/tools/go/analysis/passes/modernize/cmd/modernize@v0.52.0
NFPM        := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
PKG_VERSION ?= $(VERSION)
PKG_ARCH    ?= $(shell $(GO) env GOARCH)
DIST        ?= dist

# promtool comes out of Debian's prometheus package (hack/promtool.sh; the
# package itself is not installed), cached in TOOLS_DIR.
TOOLS_DIR   ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lbd/tools
PROMTOOL    := $(TOOLS_DIR)/promtool-debian/promtool

.PHONY: help build lab test test-all bench lint check-config check-rules promtool install package completions man docs demo demo-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

build: ## build bin/lbd with the version from git
	CGO_ENABLED=0 $(GO) build -trimpath -gcflags '$(GCFLAGS)' -ldflags '$(LDFLAGS)' -o bin/lbd ./cmd/lbd

lab: ## build bin/lbd-lab, the demo lab's driver (static like bin/lbd: the two share one compile of client-go)
	CGO_ENABLED=0 $(GO) build -trimpath -gcflags '$(GCFLAGS)' -o bin/lbd-lab ./cmd/lbd-lab

test: ## run the unit and integration tests (root runs the privileged ones too)
	$(GO) test -race -count=1 ./...

test-all: ## install what the tests need, lint, test, fuzz (the README's test command)
	./scripts/test.sh

bench: ## as root: every benchmark, its figures held to bounds (the README's benchmark command)
	./scripts/bench.sh

# The linters see the race build (-race, and GOFLAGS=-race for the two
# that ask go list for export data): its compile of every dependency is
# the one the tests need too, so a first run compiles them once, not
# twice. No file of lbd is left out by it (only `//go:build race` files
# exist, and they are added). -race needs cgo: gcc, which
# scripts/test.sh installs. The linters themselves are built without it.
# They keep the caller's GOFLAGS (scripts/test.sh sets -gcflags there for
# every build of a run).
lint: ## gofmt, go vet, staticcheck, modernize, go mod tidy
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -race ./...
	@GOFLAGS= GOBIN=$(TOOLS_DIR)/bin $(GO) install $(STATICCHECK)
	@GOFLAGS= GOBIN=$(TOOLS_DIR)/bin $(GO) install $(MODERNIZE)
	GOFLAGS="$$GOFLAGS -race" $(TOOLS_DIR)/bin/staticcheck ./...
	GOFLAGS="$$GOFLAGS -race" $(TOOLS_DIR)/bin/modernize ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

check-config: build ## validate CONFIG (default etc/lbd.yaml) with lbd check --offline
	./bin/lbd check --offline -c $(CONFIG)

promtool: ## put Debian's promtool into TOOLS_DIR once and print its path
	@hack/promtool.sh $(TOOLS_DIR)/promtool-debian | tail -n 1

check-rules: promtool ## promtool check and unit-test packaging/prometheus
	$(PROMTOOL) check rules packaging/prometheus/lbd.rules.yml
	cd packaging/prometheus && $(PROMTOOL) test rules lbd.rules.test.yml

install: build ## install the binary to $(PREFIX)/bin and the unit to /etc/systemd/system
	install -D -m 0755 bin/lbd $(DESTDIR)$(PREFIX)/bin/lbd
	@if [ -z "$(DESTDIR)" ] && ! getent group lbd >/dev/null; then groupadd --system lbd; fi
	install -d $(DESTDIR)/etc/systemd/system
	sed 's|/usr/bin/lbd|$(PREFIX)/bin/lbd|g' systemd/lbd.service > $(DESTDIR)/etc/systemd/system/lbd.service

completions: build ## write the bash, zsh and fish completions into dist/completions
	@mkdir -p dist/completions
	./bin/lbd completion bash > dist/completions/lbd
	./bin/lbd completion zsh > dist/completions/_lbd
	./bin/lbd completion fish > dist/completions/lbd.fish

man: build ## write the manual pages lbd(8) and lbd.yaml(5) into dist/man (from --help and docs/config.md)
	@mkdir -p dist/man
	$(GO) run ./hack/man -lbd bin/lbd -config docs/config.md -o dist/man
	gzip -9nf dist/man/lbd.8 dist/man/lbd.yaml.5

docs: ## write docs/config.md's default column from the code's defaults (hack/configdoc)
	go run ./hack/configdoc docs/config.md

package: build completions man ## build $(DIST)/lbd_*.deb and $(DIST)/lbd-*.rpm with nfpm
	@mkdir -p $(DIST)
	PKG_VERSION=$(PKG_VERSION) PKG_ARCH=$(PKG_ARCH) $(GO) run $(NFPM) package -f packaging/nfpm.yaml -p deb -t $(DIST)/
	PKG_VERSION=$(PKG_VERSION) PKG_ARCH=$(PKG_ARCH) $(GO) run $(NFPM) package -f packaging/nfpm.yaml -p rpm -t $(DIST)/

demo: ## as root: the demo lab, the whole product in network namespaces (the README's first command)
	./scripts/demo.sh

demo-down: ## remove the demo lab: its namespaces, processes and files
	./scripts/demo.sh down

clean: ## remove build output
	rm -rf bin dist

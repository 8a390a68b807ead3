# BaatCheet API. `make dev` runs the whole API locally; `make test` runs every test.
.PHONY: dev test lint fmt ci bench-limits

PORT ?= 5001
AWS_PORT ?= 5002

dev: ## Run the whole API on http://127.0.0.1:$(PORT) (local AWS endpoint on $(AWS_PORT))
	PORT=$(PORT) AWS_PORT=$(AWS_PORT) scripts/dev.sh

test: ## Start the local services and run the whole test suite
	scripts/test.sh

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

bench-limits: ## DynamoDB calls and latency per rate-limit decision, against a local endpoint
	scripts/bench-limits.sh

ci: lint test

# BaatCheet API. `make dev` runs the whole API locally; `make test` runs every test.
.PHONY: dev test lint fmt ci

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

ci: lint test

.PHONY: openapi docs-check
openapi: ## Regenerate functions/docs/openapi.json from every function's code (the docs Lambda embeds it)
	cargo run --quiet -p baatcheet-local --bin openapi

docs-check: ## schemathesis + Swagger UI in headless chromium against API_URL (TOKEN optional)
	API_URL=$(API_URL) TOKEN=$(TOKEN) scripts/docs-check.sh

# BaatCheet API. `make dev` runs the whole API locally; `make test` runs every test.
.PHONY: dev test lint fmt ci token

PORT ?= 5001
AWS_PORT ?= 5002

dev: ## Run the whole API on http://127.0.0.1:$(PORT) (local AWS endpoint on $(AWS_PORT))
	PORT=$(PORT) AWS_PORT=$(AWS_PORT) scripts/dev.sh

# Only a USER given on the command line counts: the environment's USER is the login name.
TOKEN_USER := $(if $(filter command line,$(origin USER)),$(USER),user_dev)

token: ## Print a dev session token the local API trusts: make token USER=user_alice EMAIL=a@b.c ROLE=admin TIER=pro
	@cargo run --quiet -p baatcheet-local --bin dev-token -- --user "$(TOKEN_USER)" --email "$(EMAIL)" \
		--role "$(ROLE)" --tier "$(TIER)" --port "$(PORT)"

test: ## Start the local services and run the whole test suite
	scripts/test.sh

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

ci: lint test

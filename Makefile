# BaatCheet API. `make dev` runs the whole API locally; `make test` runs every test.
.PHONY: dev test lint fmt ci token bench bench-limits load stress smoke lint-deploy lambda-build lambda-zip-sizes audit

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

bench-limits: ## DynamoDB calls and latency per rate-limit decision, against a local endpoint
	scripts/bench-limits.sh

ci: lint test

bench: ## Release builds, then cold start, RSS, sizes, DynamoDB calls and gateway throughput for this machine
	scripts/bench.sh

load: ## Artillery: the seed's chat load test against the local stack (LOAD_SCALE=0.1 for a quick run)
	scripts/load.sh tools/load/chat-load-test.yml

stress: ## Artillery: 100 -> 500 req/s against the local stack (LOAD_SCALE=0.1 for a quick run; 1000 users)
	LOAD_USERS="$${LOAD_USERS:-1000}" scripts/load.sh tools/load/stress-test.yml

smoke: ## Post-deploy checks against API_URL (TOKEN optional): make smoke API_URL=https://...
	API_URL=$(API_URL) TOKEN=$(TOKEN) scripts/smoke.sh

lint-deploy: ## actionlint on the workflows, cfn-lint and sam validate --lint on template.yaml
	scripts/lint-deploy.sh

audit: ## cargo-deny with deny.toml: bans, licenses, sources offline; AUDIT_ADVISORIES=1 adds RustSec advisories (network)
	scripts/audit.sh

lambda-build: ## sam build (cargo-lambda, arm64): the artifacts deploy ships, .aws-sam/build/<Function>/bootstrap
	scripts/lambda-build.sh

lambda-zip-sizes: ## Check each .aws-sam/build/<Function>/bootstrap is an executable arm64 ELF; its size, zipped
	@python3 scripts/lambda_zip_sizes.py

.PHONY: sam-events put-secret
sam-events: ## For `sam local` (Docker): events/*.json with a fresh dev token, into .local/sam/events/
	scripts/sam-local-events.sh

put-secret: ## Fill a deployed stage's secret from a local JSON file, echoing nothing: make put-secret STAGE=staging FILE=secret.json
	scripts/put-secret.sh "$(STAGE)" "$(FILE)"

.PHONY: openapi docs-check
openapi: ## Regenerate functions/docs/openapi.json from every function's code (the docs Lambda embeds it)
	cargo run --quiet -p baatcheet-local --bin openapi

docs-check: ## schemathesis + Swagger UI in headless chromium against API_URL (TOKEN optional)
	API_URL=$(API_URL) TOKEN=$(TOKEN) scripts/docs-check.sh

# Conveniences; each target calls the script the README names.
.PHONY: test demo bench lint soak
test:
	./scripts/test.sh
demo:
	./scripts/demo.sh
bench:
	./scripts/bench.sh
soak:
	./scripts/soak.sh
lint:
	.venv/bin/ruff check . && .venv/bin/mypy --strict shared

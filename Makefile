.PHONY: demo test install lint fmt bench clean
demo:
	./bootstrap.sh demo
test:
	./bootstrap.sh test
install:
	./bootstrap.sh install
fmt: install
	.venv/bin/ruff format src tests bench examples
	.venv/bin/ruff check --fix src tests bench examples
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	.venv/bin/python -m bench.hot_store
	.venv/bin/python -m bench.server
	.venv/bin/python -m bench.token_endpoint
	.venv/bin/python -m bench.guards
	.venv/bin/python -m bench.gateway
clean:
	rm -rf .venv .demo .pytest_cache .mypy_cache .ruff_cache

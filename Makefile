.PHONY: demo test install lint fmt bench bench-peers clean messages
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
# Bastion against nginx, HAProxy, Python gateways, node-oidc-provider and Authlib, in one
# run each (bench/peers/README.md; knobs such as RUNS, CASES, PEERS, BASTION_WORKERS and
# BASTION_STORE pass through the environment).
bench-peers: install
	bash bench/peers/gateway/run.sh
	bash bench/peers/oauth/run.sh
messages: install
	.venv/bin/pybabel extract -F babel.cfg -k Text -k _ -k ngettext:1,2 --no-location \
	  --sort-output --omit-header -o src/bastion/web/locales/messages.pot .
	.venv/bin/pybabel update -D messages -i src/bastion/web/locales/messages.pot \
	  -d src/bastion/web/locales --no-location --ignore-obsolete
clean:
	rm -rf .venv .demo .pytest_cache .mypy_cache .ruff_cache

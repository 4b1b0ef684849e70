.PHONY: demo test install lint fmt bench clean
demo:
	./bootstrap.sh demo
test:
	./bootstrap.sh test
install:
	./bootstrap.sh install
fmt: install
	.venv/bin/ruff format src tests bench
	.venv/bin/ruff check --fix src tests bench
bench: install
	.venv/bin/python -m bench.hot_store
clean:
	rm -rf .venv .demo .pytest_cache .mypy_cache .ruff_cache

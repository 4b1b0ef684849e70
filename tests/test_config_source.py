"""Which configuration file is used without --config, and how it says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.config_source import CONFIG_ENV, ConfigSource, Origin, find_config
from bastion.errors import ConfigError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/project/bastion.toml and an empty tmp/project/deploy/staging below it."""
    (tmp_path / "project" / "deploy" / "staging").mkdir(parents=True)
    (tmp_path / "project" / "bastion.toml").write_text("")
    return tmp_path / "project"


def test_the_option_wins_over_everything(tree: Path) -> None:
    chosen = tree / "other.toml"
    found = find_config(chosen, {CONFIG_ENV: "/etc/bastion.toml"}, tree)
    assert found == ConfigSource(chosen, Origin.OPTION)


def test_the_environment_wins_over_files_around(tree: Path) -> None:
    found = find_config(None, {CONFIG_ENV: "/etc/bastion.toml"}, tree)
    assert found == ConfigSource(Path("/etc/bastion.toml"), Origin.ENVIRONMENT)
    assert "from BASTION_CONFIG" in found.describe()


def test_an_empty_environment_variable_counts_as_unset(tree: Path) -> None:
    assert find_config(None, {CONFIG_ENV: ""}, tree).origin is Origin.WORKING_DIRECTORY


def test_the_working_directory_then_the_nearest_parent(tree: Path) -> None:
    here = find_config(None, {}, tree)
    assert here == ConfigSource(tree / "bastion.toml", Origin.WORKING_DIRECTORY)
    assert here.describe() == f"config: {tree / 'bastion.toml'} (./bastion.toml)"
    below = find_config(None, {}, tree / "deploy" / "staging")
    assert below == ConfigSource(tree / "bastion.toml", Origin.PARENT_DIRECTORY)
    assert "parent directory" in below.describe()
    (tree / "deploy" / "bastion.toml").write_text("")
    nearer = find_config(None, {}, tree / "deploy" / "staging")
    assert nearer.path == tree / "deploy" / "bastion.toml", "the nearest file wins"


def test_a_relative_working_directory_gives_an_absolute_path(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree / "deploy")
    found = find_config(None, {}, Path("staging"))
    assert found.path == tree / "bastion.toml"


def test_a_directory_named_bastion_toml_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "bastion.toml").mkdir()
    assert find_config(None, {}, tmp_path).path != tmp_path / "bastion.toml"


def test_defaults_when_nothing_is_found(tmp_path: Path) -> None:
    found = find_config(None, {}, tmp_path)
    if found.origin is not Origin.DEFAULTS:
        pytest.skip(f"a bastion.toml above the temporary directory: {found.path}")
    assert found.path is None
    assert str(found) == "built-in defaults"
    assert "no bastion.toml here or in a parent directory" in found.describe()


def test_a_file_found_around_that_another_user_owns_is_refused(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who can write to a parent directory (/tmp) must not choose the database."""
    planted = tree / "bastion.toml"
    if os.getuid() == 0:
        os.chown(planted, 4242, -1)
    else:
        monkeypatch.setattr(os, "getuid", lambda: os.stat(planted).st_uid + 1)
    with pytest.raises(ConfigError) as refused:
        find_config(None, {}, tree / "deploy")
    (problem,) = refused.value.problems
    assert str(planted) in problem.message
    assert "another user" in problem.message
    assert f"-c {planted}" in problem.message
    # Named explicitly, the same file is the operator's choice.
    assert find_config(planted, {}, tree).path == planted
    assert find_config(None, {CONFIG_ENV: str(planted)}, tree).path == planted

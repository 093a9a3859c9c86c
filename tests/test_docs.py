"""The documentation a user reads: command help texts, ``--help`` output and the README."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from sluice import __version__
from sluice.cli.app import app
from tests.conftest import sluice_cli

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "sluice",
    "sluice init",
    "sluice query",
    "sluice query run",
    "sluice query history",
    "sluice serve",
    "sluice demo",
    "sluice source",
    "sluice source check",
    "sluice source simulate",
    "sluice source generate",
    "sluice source load-dump",
    "sluice source enable-cdc",
    "sluice source disable-cdc",
    "sluice source trim-cdc",
    "sluice job",
    "sluice job start",
    "sluice job status",
    "sluice job runs",
    "sluice job logs",
    "sluice job stop",
    "sluice job retry",
    "sluice job graph",
    "sluice job reset-cursor",
    "sluice job accept-drift",
    "sluice catalog",
    "sluice catalog tables",
    "sluice catalog describe",
    "sluice crawl",
    "sluice plan",
    "sluice apply",
    "sluice destroy",
    "sluice config",
    "sluice config schema",
    "sluice scheduler",
    "sluice schedule",
    "sluice schedule list",
}


def walk(command: Any, path: str = "sluice") -> Iterator[tuple[str, Any]]:
    """Every command and subcommand of the click tree, with its full name."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, f"{path} {name}")


def all_commands() -> dict[str, Any]:
    return dict(walk(typer.main.get_command(app)))


def test_the_command_tree_is_the_documented_one() -> None:
    assert set(all_commands()) == COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_parameter_has_help(name: str) -> None:
    command = all_commands()[name]
    assert (command.help or "").strip(), f"{name} has no help text"
    assert (command.get_short_help_str() or "").strip(), f"{name} has no short help"
    for param in command.params:
        kind = type(param).__name__
        help_text = (getattr(param, "help", None) or "").strip()
        assert help_text, f"{kind} {param.name} of '{name}' has no help"
        assert help_text.endswith((".", ")")), f"help of {param.name} of '{name}': {help_text!r}"


def test_every_option_of_the_root_and_job_start_is_listed() -> None:
    commands = all_commands()
    root = {opt for p in commands["sluice"].params for opt in p.opts}
    assert root == {"--debug", "--version"}
    start = {opt for p in commands["sluice job start"].params for opt in p.opts}
    assert {"--wait", "--quiet", "-q", "--timeout", "--project", "-p"} <= start


def listed_commands(help_text: str) -> set[str]:
    """The command names in the ``Commands:`` section of a help page."""
    section = help_text.split("Commands:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^\s{2}(\S+)\s", section, flags=re.MULTILINE)}


def test_root_help_in_a_subprocess(tmp_path: Path) -> None:
    result = sluice_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Sluice: the data engineering lifecycle on one machine." in result.stdout
    assert "--debug" in result.stdout
    assert "--version" in result.stdout
    assert listed_commands(result.stdout) == {
        "init",
        "query",
        "serve",
        "demo",
        "source",
        "job",
        "catalog",
        "crawl",
        "plan",
        "apply",
        "destroy",
        "config",
        "scheduler",
        "schedule",
    }
    assert list(tmp_path.iterdir()) == []


def test_job_help_in_a_subprocess(tmp_path: Path) -> None:
    result = sluice_cli("job", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Job runs" in result.stdout
    assert listed_commands(result.stdout) == {
        "start",
        "retry",
        "graph",
        "status",
        "runs",
        "logs",
        "stop",
        "reset-cursor",
        "accept-drift",
    }
    assert list(tmp_path.iterdir()) == []


def test_job_start_help_documents_wait_and_project(tmp_path: Path) -> None:
    result = sluice_cli("job", "start", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--wait", "--quiet", "--timeout", "--project"):
        assert option in result.stdout
    assert "Run to the end here, with progress." in result.stdout


def test_version_option(tmp_path: Path) -> None:
    result = sluice_cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, f"sluice {__version__}")


def quickstart_commands(readme: str) -> list[str]:
    """The commands in the first fenced code block of the README's Quickstart section."""
    section = readme.split("## Quickstart", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    block = re.search(r"^```[^\n]*\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert block is not None, "the Quickstart section has no code block"
    commands = []
    for line in block.group(1).splitlines():
        text = line.strip().removeprefix("$ ").strip()
        if text and not text.startswith("#"):
            commands.append(text)
    return commands


def test_readme_quickstart_is_make_demo_and_make_test() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    if "## Quickstart" not in readme:
        pytest.skip("README.md has no '## Quickstart' section yet")
    assert quickstart_commands(readme) == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), f"no '{target}' target"


def test_quickstart_parser_reads_only_the_first_block() -> None:
    readme = (
        "# Sluice\n\n## Quickstart\n\nRun:\n\n```sh\n$ make demo\n# then\nmake test\n```\n\n"
        "```sh\nmake bench\n```\n\n## Next\n\n```sh\nmake lint\n```\n"
    )
    assert quickstart_commands(readme) == ["make demo", "make test"]

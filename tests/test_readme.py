"""README's command synopses list every command and every option the parser has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from monitor.cli.main import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[
        tuple[str, ...], argparse.ArgumentParser]:
    """Command words -> the parser of each command that has no subcommands."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(leaf_parsers(sub, (*path, name)))
    return found or {path: parser}


def options(parser: argparse.ArgumentParser) -> set[str]:
    """Each visible option by its longest spelling."""
    return {max(a.option_strings, key=len) for a in parser._actions
            if a.option_strings and a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction)}


def synopses() -> dict[tuple[str, ...], str]:
    """Command words -> the synopsis text (continuation lines joined) in README's Commands."""
    block = README.read_text(encoding="utf-8").split("\n## Commands\n", 1)[1].split("```")[1]
    found: dict[tuple[str, ...], str] = {}
    command: tuple[str, ...] = ()
    for line in block.splitlines():
        if line.startswith("drift-monitor "):
            words = line.split("#")[0].split()[1:]
            command = tuple(w for w in words[:2] if re.fullmatch(r"[a-z]+", w))
            found[command] = line.split("#")[0]
        elif line.startswith(" ") and command:
            found[command] += " " + line.split("#")[0].strip()
    return found


COMMANDS = leaf_parsers(build_parser())


def test_readme_lists_every_command() -> None:
    assert set(synopses()) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_readme_synopsis_lists_every_option_of_the_command(command: tuple[str, ...]) -> None:
    text = synopses()[command]
    written = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", text))
    parser = options(COMMANDS[command])
    short = {min(a.option_strings, key=len): max(a.option_strings, key=len)
             for a in COMMANDS[command]._actions if a.option_strings}
    assert {short.get(o, o) for o in written} == parser

"""The option registry: the docs' Options table, the parsers and the job keys agree with it."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.arguments import add_option
from pipeline.cli.parser import make_parser, subcommand_parser
from pipeline.config import GATES, QuantizeConfig, jobfile
from pipeline.config.options import OPTIONS, for_command, markdown

ROOT = Path(__file__).resolve().parents[3]


def test_docs_option_table_is_the_registry() -> None:
    page = ROOT / "docs" / "reference" / "options.md"
    text = page.read_text(encoding="utf-8")
    start, end = "<!-- options:start -->\n", "<!-- options:end -->"
    assert start in text and end in text, f"{page} lost its generated Options table"
    table = text[text.index(start) + len(start) : text.index(end)]
    assert table == markdown(), (
        f"{page}'s Options table differs from the registry; regenerate it with "
        "`python -m pipeline.config.options --markdown`"
    )


def test_every_build_and_sweep_flag_is_in_the_options_table() -> None:
    table = markdown()
    for command in ("build", "sweep"):
        for action in subcommand_parser(make_parser(), command)._actions:
            if action.option_strings and action.dest != "help":
                assert f"`{action.option_strings[0]}" in table, action.option_strings


def test_parsers_take_exactly_the_registered_options() -> None:
    parser = make_parser()
    for command in ("build", "sweep"):
        dests = {a.dest for a in subcommand_parser(parser, command)._actions} - {"help"}
        assert dests == {o.dest for o in for_command(command)}, command
    for option in for_command("build"):
        action = next(
            a for a in subcommand_parser(parser, "build")._actions if a.dest == option.dest
        )
        assert action.help, f"{option.flag} has no help"
        assert action.default == option.default, option.flag


def test_defaults_come_from_the_config_dataclasses() -> None:
    by_dest = {o.dest: o for o in OPTIONS}
    assert by_dest["calibration_samples"].default == QuantizeConfig.calibration_samples
    assert by_dest["no_bench"].default is False  # [bench] enabled = true
    assert [k.name for k in jobfile.KEYS if k.section == "gates"][: len(GATES)] == [
        g.name for g in GATES
    ]


def test_add_option_renames_a_registered_option_for_a_script() -> None:
    parser = argparse.ArgumentParser()
    add_option(parser, "structured_distill", "--distill", default=0.5)
    add_option(parser, "structured_lr_schedule", "--lr-schedule", default="cosine")
    args = parser.parse_args(["--lr-schedule", "constant"])
    assert args.distill == 0.5 and args.lr_schedule == "constant"

"""The `learnedloss` command: list, info, the parser's shape, help texts and the registry."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import pytest

from learnedloss._version import __version__
from learnedloss.bundled import bundled_names, bundled_path, experimental_names
from learnedloss.cli import build_parser, main
from learnedloss.cli.listing import EXPERIMENTAL_MARK
from learnedloss.families import registry
from learnedloss.families.recipe import Recipe


def test_info_prints_config_and_card_summary(capsys):
    assert main(["info", "mse-fit"]) == 0
    out = capsys.readouterr().out
    assert "kind:              regression" in out
    assert "hidden sizes:      [50, 50]" in out
    assert "elu -> square" in out
    assert "parameters:        2751" in out  # 2*50+50 + 50*50+50 + 50+1
    assert "mse-fit: a loss network fitted to reproduce MSE" in out
    assert "not meta-trained" in out


def test_info_json_is_machine_readable(capsys, small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "loss")
    assert main(["info", str(tmp_path / "loss"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["hidden_sizes"] == [8, 8]
    assert info["parameters"] == sum(p.numel() for p in small_loss.parameters())
    assert info["model_card"]["card_data"]["library_name"] == "learnedloss"


def test_info_on_a_bad_checkpoint_exits_2_with_the_reason(capsys, small_loss, tmp_path):
    small_loss.save_pretrained(tmp_path / "loss")
    (tmp_path / "loss" / "model.safetensors").write_bytes(b"garbage")
    assert main(["info", str(tmp_path / "loss")]) == 2
    err = capsys.readouterr().err
    assert "not a readable safetensors file" in err
    assert err.startswith("learnedloss: error: ") and err.count("\n") == 1
    assert main(["info", "nobody/absent"]) == 2


def test_list_names_the_bundled_losses(capsys):
    assert main(["list"]) == 0
    assert "mse-fit" in capsys.readouterr().out.split()


def test_list_names_prints_plain_names_for_scripts(capsys):
    assert main(["list", "--names"]) == 0
    assert capsys.readouterr().out.split() == bundled_names()


def test_list_prints_a_row_per_bundled_loss_and_marks_the_experimental_ones(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    assert set(bundled_names()) <= set(rows)
    experimental = experimental_names()
    assert "mse-fit" in experimental and "robust-regression" not in experimental
    assert set(experimental) < set(bundled_names())
    marked = [line for line in lines if line.strip().startswith(EXPERIMENTAL_MARK)]
    assert len(marked) == len(experimental)
    assert lines.index(rows["robust-regression"]) < lines.index(rows["mse-fit"])


def test_list_reads_its_figures_from_the_cards_metadata(capsys):
    config = json.loads((bundled_path("robust-regression") / "config.json").read_text())
    catalog = config["metadata"]["catalog"]
    assert main(["list"]) == 0
    row = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("robust-regression ")
    )
    assert f"{catalog['cost_per_call']['ratio']:g}x" in row
    assert catalog["replaces"] in row and config["parameterization"] in row


def test_console_script_is_installed():
    exe = shutil.which("learnedloss")
    assert exe is not None, "the learnedloss console script is not on PATH"
    result = subprocess.run([exe, "info", "mse-fit"], capture_output=True, text=True, check=True)
    assert "regression" in result.stdout


def test_python_dash_m_prints_the_version():
    result = subprocess.run(
        [sys.executable, "-m", "learnedloss", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"learnedloss {__version__}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _walk(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _walk(sub)


def test_every_option_of_every_command_has_help():
    parsers = list(_walk(build_parser()))
    assert len(parsers) > 2 * len(registry.FAMILIES)
    missing = []
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [
                    f"{parser.prog} {choice.dest}"
                    for choice in action._choices_actions
                    if not (choice.help or "").strip()
                ]
            elif not (action.help or "").strip():
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help: {missing}"


@pytest.mark.parametrize("command", ["meta-train", "evaluate"])
def test_family_choices_come_from_the_registry(command):
    families = _subparsers(_subparsers(build_parser())[command])
    assert list(families) == registry.names() == [f.name for f in registry.FAMILIES]


def test_evaluate_help_lists_every_registered_family(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["evaluate", "--help"])
    assert exit.value.code == 0
    printed = capsys.readouterr().out
    for family in registry.FAMILIES:
        assert family.name in printed and family.help[:30] in " ".join(printed.split())


def test_every_family_provides_its_parts():
    for family in registry.FAMILIES:
        parts = family.parts()
        assert issubclass(parts.recipe, Recipe), family.name
        for name in ("add_evaluate_arguments", "evaluate", "meta_train"):
            assert callable(getattr(parts, name)), (family.name, name)
        assert family.docs.endswith(".md")
    for name in (registry.DEMO, registry.META_TRAINING_DEMO):
        assert callable(registry.family(name).parts().demo)


def test_registry_lookup_names_the_known_families():
    assert registry.family("digits").kind == "classification"
    with pytest.raises(LookupError, match="sine, shaped-sine, mountain-car"):
        registry.family("nope")


def test_help_does_not_import_the_families():
    code = (
        "import sys\nfrom learnedloss.cli import main\n"
        "for argv in (['--help'], ['meta-train', '--help'], ['evaluate', '--help']):\n"
        "    try: main(argv)\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.endswith('.family') and 'families' in m))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"

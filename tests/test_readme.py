"""The README's two quickstart commands are the ones CI and users run."""

from __future__ import annotations

import re

from tests.common import ROOT


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks[:2] for line in block.splitlines() if line.strip()]


def test_readme_opens_with_install_and_run_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "pip install" in main_job and "python -m eval" in main_job
    assert "pip install" in tests and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _quickstart_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_layout_table_lists_every_top_level_package() -> None:
    text = (ROOT / "README.md").read_text()
    for folder in ["rdbpfn/", "priors/", "training/", "eval/", "checkpoints/", "tests/"]:
        assert f"`{folder}`" in text, folder
        assert (ROOT / folder).is_dir(), folder

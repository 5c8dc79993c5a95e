"""The package as users install it: a built wheel, installed without --editable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from learnedloss import __version__, bundled_names

ROOT = Path(__file__).resolve().parents[2]

PACKAGED = ("learnedloss", "pretrained", "pyproject.toml", "setup.py", "README.md")
"""What the wheel is built from."""


def copy_of_the_sources(target: Path) -> Path:
    """A copy of what the wheel is built from, without a previous build's outputs: setuptools
    packages a ``build/lib`` it finds as it is, stale modules included."""
    for name in PACKAGED:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, target / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, target / name)
    return target


def test_bundled_loss_loads_from_a_regular_wheel_install(tmp_path):
    wheels = tmp_path / "wheels"
    source = copy_of_the_sources(tmp_path / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("learnedloss-*.whl")
    assert wheel.name.startswith(f"learnedloss-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert bundled_names()  # every loss bundled in the checkout ships in the wheel
    for name in bundled_names():
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"learnedloss/pretrained/{name}/{file}" in names
    assert "learnedloss/py.typed" in names
    sources = {p.relative_to(source).as_posix() for p in (source / "learnedloss").rglob("*.py")}
    missing = sources - set(names)
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    bundled = {
        f"learnedloss/{p.relative_to(source).as_posix()}"
        for p in (source / "pretrained").rglob("*.py")
    }
    stale = {n for n in names if n.startswith("learnedloss/") and n.endswith(".py")}
    stale -= sources | bundled
    assert not stale, f"modules in the wheel that the checkout no longer has: {sorted(stale)}"

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    script = (
        "import learnedloss, torch\n"
        "print(learnedloss.__file__)\n"
        "from learnedloss import MetaTrainer, evaluate\n"
        "loss = learnedloss.LearnedLoss.from_pretrained('mse-fit')\n"
        "print(float(loss(torch.zeros(3), torch.ones(3))))\n"
    )
    # Run from an empty directory with only the installed copy importable. `-S` skips the
    # .pth files of site-packages, so an editable install of the checkout cannot supply
    # modules the wheel lacks; the dependencies come from this environment's site-packages.
    dependencies = sysconfig.get_paths()["purelib"]
    env = {
        "PYTHONPATH": f"{site}{os.pathsep}{dependencies}",
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, value = result.stdout.split()
    assert module_file.startswith(str(site))
    assert abs(float(value) - 1.0) < 0.05  # mse-fit reproduces MSE: (0 - 1)^2 = 1


def test_the_newest_changelog_section_is_the_package_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## (\S+)", changelog, flags=re.MULTILINE)
    assert newest is not None and newest.group(1) == __version__

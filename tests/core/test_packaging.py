"""The package as users install it: a built wheel, installed without --editable."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from learnedloss import bundled_names

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_loss_loads_from_a_regular_wheel_install(tmp_path):
    wheels = tmp_path / "wheels"
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
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("learnedloss-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert bundled_names()  # every loss bundled in the checkout ships in the wheel
    for name in bundled_names():
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"learnedloss/pretrained/{name}/{file}" in names
    assert "learnedloss/py.typed" in names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "learnedloss").rglob("*.py")}
    missing = sources - set(names)
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"

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

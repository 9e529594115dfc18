"""The package stands on its own: installed non-editably, without the checkout's samples/
on the path, the command and every public module work."""
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import mrcnn

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = pathlib.Path(mrcnn.__file__).resolve().parent

# Run in the installed copy: imports every public module, checks that none came from
# elsewhere or pulled in `samples`, and builds the shapes data the way `mrcnn train
# --dataset shapes` and `--config shapes` do.
CHECK = textwrap.dedent("""
    import importlib, pkgutil, sys
    import mrcnn
    assert mrcnn.__file__.startswith(sys.argv[1]), mrcnn.__file__
    # Every module but __main__, which would run the command.
    names = [m.name for m in pkgutil.walk_packages(mrcnn.__path__, "mrcnn.")
             if m.name != "mrcnn.__main__"]
    for name in names:
        importlib.import_module(name)
    assert not [m for m in sys.modules if m == "samples" or m.startswith("samples.")]
    from mrcnn import cli, config_presets
    assert config_presets.load_config_class("shapes").NAME == "shapes"
    args = cli.build_parser().parse_args(
        ["train", "--dataset", "shapes", "--weights", "none", "--train-count", "2",
         "--val-count", "1"])
    config, train, val, _ = cli.training_data(args)
    assert (config.NUM_CLASSES, len(train.image_ids), len(val.image_ids)) == (4, 2, 1)
    print(len(names), "modules")
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package pip-installed (not editable) into a target folder, from a copy of the
    sources without samples/, so that the build leaves the checkout untouched."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "mrcnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    work = root / "elsewhere"
    work.mkdir()
    # Only the installed copy on the path, started from a folder that is not the checkout.
    env = {**os.environ, "PYTHONPATH": str(target)}
    return {"target": target, "cwd": work, "env": env}


def _run(installed, *args):
    return subprocess.run([sys.executable, *args], cwd=installed["cwd"], env=installed["env"],
                          capture_output=True, text=True, timeout=300)


def test_installed_command_help(installed):
    result = _run(installed, "-m", "mrcnn", "train", "--dataset", "shapes", "--help")
    assert result.returncode == 0, result.stderr
    assert "--dataset" in result.stdout and "shapes" in result.stdout


def test_installed_modules_import_without_samples(installed):
    assert not (installed["target"] / "samples").exists()
    result = _run(installed, "-c", CHECK, str(installed["target"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modules" in result.stdout

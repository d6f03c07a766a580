"""The software environments agree: pyproject.toml's extras, envs/constraints.txt, the conda
envs (envs/<family>.yaml), the Apptainer definitions (containers/<family>.def), and the rules
that name them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import yaml

from blendphot.containers import read_definition
from blendphot.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("data", "train", "evaluate")
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return canonical(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def pins():
    lines = (ROOT / "envs/constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    assert all(len(p) == 2 for p in pairs), "constraints.txt: every line is name==version"
    return {canonical(name): version for name, version in pairs}


def family_requirements(project, family) -> set[str]:
    return {requirement_name(r) for r in project["dependencies"] + project["optional-dependencies"][family]}


def test_every_dependency_is_pinned(project, pins):
    names = {requirement_name(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        names |= {requirement_name(r) for r in reqs if not r.startswith("blendphot")}
    assert names - set(pins) == set(), "add these to envs/constraints.txt"


def test_all_extra_is_every_family(project):
    (req,) = project["optional-dependencies"]["all"]
    assert set(req.split("[")[1].rstrip("]").split(",")) == {*FAMILIES, "workflow"}


def conda_env_problems(env: dict, family: str, project, pins) -> list[str]:
    """What differs between a conda env and blendphot[family] at the pinned versions."""
    # name=version or name=version=build: the build string is checked on its own
    specs = {name: version for name, version, *_ in
             (dep.split("=") for dep in env["dependencies"] if isinstance(dep, str))}
    problems = [] if specs.pop("python", None) == "3.11" else ["python is not 3.11"]
    wanted = {CONDA_NAMES.get(name, name): pins[name] for name in family_requirements(project, family)}
    problems += [f"{name}: env has {specs.get(name)}, expected {version}"
                 for name, version in wanted.items() if specs.get(name) != version]
    problems += [f"{name}: not in blendphot[{family}]" for name in specs.keys() - wanted.keys()]
    return problems


@pytest.mark.parametrize("family", FAMILIES)
def test_conda_env_matches_the_family_extra_and_the_pins(family, project, pins):
    env = yaml.safe_load((ROOT / f"envs/{family}.yaml").read_text())
    assert set(env) == {"channels", "dependencies"} and "conda-forge" in env["channels"]
    assert conda_env_problems(env, family, project, pins) == []


def test_the_training_env_and_image_are_cuda_builds():
    env = yaml.safe_load((ROOT / "envs/train.yaml").read_text())
    assert any(str(dep).startswith("pytorch=") and str(dep).endswith("=cuda*") for dep in env["dependencies"])
    assert "assert torch.version.cuda" in (ROOT / "containers/train.def").read_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_container_definition_installs_the_family_at_the_pins(family):
    definition = read_definition(ROOT / f"containers/{family}.def")
    assert definition.header["Bootstrap"] == "docker"
    assert definition.base_image == "python:3.11-slim-bookworm"  # same minor version as envs/*.yaml
    files = dict(definition.files)
    for src in files:
        assert (ROOT / src).exists(), f"{family}.def copies {src}, which does not exist"
    assert files["envs/constraints.txt"] == "/opt/blendphot/envs/constraints.txt"
    (install,) = definition.pip_installs()
    assert install[install.index("-c") + 1] == files["envs/constraints.txt"]
    assert install[-1] == f"{files['pyproject.toml'].rsplit('/', 1)[0]}[{family}]"
    # %test imports the family's stage modules
    modules = {"data": "blendphot.mock", "train": "blendphot.train", "evaluate": "blendphot.figures"}[family]
    assert modules in definition.script("test")


def test_a_misspelled_section_is_an_error(tmp_path):
    text = (ROOT / "containers/data.def").read_text().replace("%test", "%tset")
    bad = tmp_path / "bad.def"
    bad.write_text(text)
    with pytest.raises(InputError, match=r"bad.def:\d+: unknown section %tset"):
        read_definition(bad)
    bad.write_text((ROOT / "containers/data.def").read_text().replace("From:", "Form:"))
    with pytest.raises(InputError, match="no From: line"):
        read_definition(bad)


def test_a_version_mismatch_or_a_stray_package_is_caught(project, pins):
    env = yaml.safe_load((ROOT / "envs/data.yaml").read_text())
    env["dependencies"] = [d.replace(f"sep={pins['sep']}", "sep=1.2.1") for d in env["dependencies"]] + ["torch=2.13.0"]
    assert conda_env_problems(env, "data", project, pins) == [f"sep: env has 1.2.1, expected {pins['sep']}",
                                                              "torch: not in blendphot[data]"]


def test_every_rule_names_its_family_env_and_image():
    """Each rule's conda env and container are the same family."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    pairs = re.findall(
        r'conda:\s*\n\s*"\.\./\.\./envs/(\w+)\.yaml"\s*\n\s*container:\s*\n\s*CONTAINERS\["(\w+)"\]', text)
    n_rules = len(re.findall(r"^\s*rule\b", text, flags=re.M))
    assert len(pairs) == n_rules and all(a == b for a, b in pairs)
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert config["containers"] == {f: f"containers/{f}.sif" for f in FAMILIES}


@pytest.mark.parametrize("family,modules,absent", [
    ("data", "blendphot.mock blendphot.stamps blendphot.clean blendphot.inspect blendphot.split blendphot.blend "
             "blendphot.select blendphot.download blendphot.workflow", "torch"),
    ("train", "blendphot.train blendphot.inference blendphot.models blendphot.data blendphot.workflow",
     "astropy sep galsim skimage matplotlib scipy"),
    ("evaluate", "blendphot.baseline blendphot.evaluate blendphot.figures blendphot.prediction blendphot.workflow",
     "torch galsim skimage"),
])
def test_each_family_imports_without_the_other_families_packages(family, modules, absent):
    """What a stage family's image and env leave out, its modules must not import."""
    import subprocess
    import sys

    code = (f"import sys\nfor name in {absent.split()!r}: sys.modules[name] = None\n"
            + "".join(f"import {m}\n" for m in modules.split()))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]

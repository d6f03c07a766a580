"""Apptainer definition files of the stage families (containers/<family>.def), read strictly.

spython parses a definition but accepts anything: a misspelled ``%tset`` silently becomes a
comment and the image is built without its test. :func:`read_definition` parses with spython,
then checks what spython lets through: every ``%section`` is one Apptainer knows, the header
names a bootstrap agent and a base image, and ``%post`` and ``%test`` are present. Errors name
the file and the line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from blendphot.errors import InputError

__all__ = ["SECTIONS", "Definition", "read_definition"]

# Sections of an Apptainer definition file (apptainer.org/docs/user/main/definition_files.html).
SECTIONS = {"setup", "files", "environment", "post", "runscript", "startscript", "test", "labels",
            "help", "arguments", "appinstall", "appfiles", "appenv", "apptest", "applabels", "apphelp",
            "apprun", "appstart"}
REQUIRED = ("post", "test")


@dataclass
class Definition:
    path: Path
    header: dict[str, str]
    sections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def base_image(self) -> str:
        return self.header["From"]

    @property
    def files(self) -> list[tuple[str, str]]:
        """(source relative to the build directory, destination in the image) pairs."""
        pairs = []
        for line in self.sections.get("files", []):
            parts = shlex.split(line)
            pairs.append((parts[0], parts[-1]))
        return pairs

    def script(self, section: str) -> str:
        return "\n".join(self.sections.get(section, [])) + "\n"

    def pip_installs(self) -> list[list[str]]:
        """The arguments of every `pip install` in %post (continuation lines joined)."""
        post = re.sub(r"\\\n\s*", " ", self.script("post"))
        return [shlex.split(m.group(1)) for m in re.finditer(r"pip3? install ([^\n;&|]+)", post)]


def read_definition(path: str | Path) -> Definition:
    """Parse ``path`` and check it; raise :class:`InputError` naming the file and the line."""
    from spython.main.parse.parsers import SingularityParser

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the container definition ({exc})") from None
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        match = re.match(r"^%(\w+)", line)
        if match:
            name = match.group(1).lower()
            if name not in SECTIONS:
                raise InputError(f"{path}:{number}: unknown section %{match.group(1)} "
                                 f"(known: {', '.join('%' + s for s in sorted(SECTIONS))})")
            if name in sections:
                raise InputError(f"{path}:{number}: section %{name} appears twice")
            current = sections.setdefault(name, [])
            continue
        if current is None:
            if line and not line.startswith("#"):
                key, sep, value = line.partition(":")
                if not sep:
                    raise InputError(f"{path}:{number}: header lines are 'Key: value', found {line!r}")
                header[key.strip()] = value.strip()
        elif line and not line.startswith("#"):
            current.append(line)
    for key in ("Bootstrap", "From"):
        if key not in header:
            raise InputError(f"{path}: header has no {key}: line")
    for name in REQUIRED:
        if not sections.get(name):
            raise InputError(f"{path}: no %{name} section (or it is empty)")
    # spython must read it too (it is what Apptainer-aware tooling uses); its base image must agree
    try:
        recipe = SingularityParser(str(path)).recipe
    except Exception as exc:  # spython raises bare exceptions on what it cannot parse
        raise InputError(f"{path}: spython cannot parse it ({type(exc).__name__}: {exc})") from None
    stage = next(iter(recipe.values()))
    if stage.fromHeader != header["From"]:
        raise InputError(f"{path}: spython reads base image {stage.fromHeader!r}, the header says {header['From']!r}")
    return Definition(path=path, header=header, sections=sections)

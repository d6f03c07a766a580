"""A stand-in for the `apptainer` command, backed by podman, for the container tests.

Apptainer cannot be installed on the test machines (it is in neither Debian 12 nor PyPI), but
podman can. This script answers the three calls the workflow makes, so that Snakemake's real
`--sdm apptainer` code path runs unchanged:

  apptainer --version
  apptainer build IMAGE.sif DEFINITION.def
      reads the definition with blendphot.containers.read_definition; builds a root file system
      for its base image (python:3.11-slim-bookworm: Debian bookworm with Python 3.11, made with
      debootstrap, since Docker Hub cannot be reached from here); copies %files; runs %post and
      then %test in it (chroot), as `apptainer build` does; imports it into podman; writes
      IMAGE.sif as a small text file naming the podman image.
  apptainer [--quiet --silent] exec --home DIR [--bind SRC[:DST]] [--pwd DIR] [--nv] IMAGE CMD...
      podman run with the same binds, the host's environment (as Apptainer passes it), the
      image's %environment sourced first, and the host network.

Debian packages come from $BLENDPHOT_DEBIAN_MIRROR (default http://deb.debian.org/debian);
base file systems are cached in $BLENDPHOT_CONTAINER_CACHE (default /var/tmp/blendphot-containers).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from blendphot.containers import read_definition

VERSION = "apptainer version 1.3.6"
MARKER = "blendphot-apptainer-standin"
ENV_SCRIPT = "/.singularity.d/env/90-environment.sh"
CACHE = Path(os.environ.get("BLENDPHOT_CONTAINER_CACHE", "/var/tmp/blendphot-containers"))
MIRROR = os.environ.get("BLENDPHOT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Base images this stand-in can make without a registry: the Debian release and its packages.
BASES = {"python:3.11-slim-bookworm": ("bookworm", ["python3", "python3-venv", "ca-certificates"])}
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
              "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def say(msg: str) -> None:
    print(f"apptainer (stand-in): {msg}", file=sys.stderr, flush=True)


def base_rootfs(image: str) -> Path:
    if image not in BASES:
        sys.exit(f"apptainer (stand-in): cannot make base image {image!r} here (known: {', '.join(BASES)})")
    suite, packages = BASES[image]
    key = hashlib.sha256(f"{suite} {packages} {MIRROR}".encode()).hexdigest()[:12]
    root = CACHE / f"base-{suite}-{key}"
    if not (root / ".complete").exists():
        say(f"debootstrap {suite} with {', '.join(packages)} from {MIRROR}")
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(tmp),
                        MIRROR], check=True, stdout=subprocess.DEVNULL)
        (tmp / ".complete").touch()
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root


def chroot(root: Path, script: str, what: str) -> None:
    env = dict(CHROOT_ENV)
    # The build host's certificate authorities (a site's TLS-intercepting proxy among them)
    # and proxy settings, for pip in %post, as a site's own build set-up would provide them.
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.exists():
        shutil.copy2(host_ca, root / "etc/build-host-ca.crt")
        env.update({k: "/etc/build-host-ca.crt" for k in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")})
    env.update({k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")})
    proc = subprocess.run(["chroot", str(root), "/bin/sh", "-c", script], env=env)
    if proc.returncode != 0:
        sys.exit(f"apptainer (stand-in): %{what} failed with exit code {proc.returncode}")


def build(args: list[str]) -> None:
    args = [a for a in args if a not in ("--force", "-F", "--fakeroot", "--notest")]
    sif, definition_path = Path(args[0]), Path(args[1])
    definition = read_definition(definition_path)
    image = f"localhost/blendphot-{sif.stem}:latest"
    work = CACHE / f"build-{sif.stem}"
    shutil.rmtree(work, ignore_errors=True)
    say(f"building {sif} from {definition_path} (base {definition.base_image})")
    # cp -a, not shutil.copytree: device nodes (/dev/zero...) must stay nodes, not be read
    subprocess.run(["cp", "-a", str(base_rootfs(definition.base_image)), str(work)], check=True)
    try:
        for src, dst in definition.files:
            target = work / dst.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_dir():
                shutil.copytree(src, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, target)
        shutil.copy2("/etc/resolv.conf", work / "etc/resolv.conf")
        env_script = work / ENV_SCRIPT.lstrip("/")
        env_script.parent.mkdir(parents=True, exist_ok=True)
        env_script.write_text(definition.script("environment"))
        say("running %post")
        chroot(work, definition.script("post"), "post")
        say("running %test")
        chroot(work, f". {ENV_SCRIPT}\n" + definition.script("test"), "test")
        tar = subprocess.Popen(["tar", "-C", str(work), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-q", "-", image], stdin=tar.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            sys.exit("apptainer (stand-in): tar of the root file system failed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sif.write_text(f"{MARKER}\nimage={image}\n")
    say(f"built {sif} -> podman image {image}")


def exec_(args: list[str]) -> None:
    home, pwd, binds, env, gpu = None, None, [], {}, False
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt == "--home":
            home = args.pop(0).split(":")[0]
        elif opt in ("--bind", "-B"):
            binds += args.pop(0).split(",")
        elif opt == "--pwd":
            pwd = args.pop(0)
        elif opt == "--nv":
            gpu = True
        elif opt in ("--env",):
            key, _, value = args.pop(0).partition("=")
            env[key] = value
        elif opt in ("--quiet", "--silent", "-q", "-s", "--cleanenv", "-e", "--containall", "--no-home"):
            continue
        else:
            sys.exit(f"apptainer (stand-in): exec option {opt} is not supported")
    sif, command = Path(args[0]), args[1:]
    lines = sif.read_text().splitlines() if sif.is_file() else []
    if not lines or lines[0] != MARKER:
        sys.exit(f"apptainer (stand-in): {sif} was not built by this stand-in")
    image = lines[1].split("=", 1)[1]
    for prefix in ("SINGULARITYENV_", "APPTAINERENV_"):
        env.update({k[len(prefix):]: v for k, v in os.environ.items() if k.startswith(prefix)})
    cmd = ["podman", "run", "--rm", "--network", "host", "--security-opt", "label=disable", "--env-host"]
    home = home or os.getcwd()
    cmd += ["-v", f"{home}:{home}", "-e", f"HOME={home}", "-w", pwd or os.getcwd()]
    for bind in binds:
        src, _, dst = bind.partition(":")
        cmd += ["-v", f"{src}:{dst.split(':')[0] or src}"]
    if gpu and not any(Path("/dev").glob("nvidia*")):
        say("--nv: no NVIDIA device on this machine, running without GPU")
    for key, value in env.items():
        cmd += ["-e", f"{key}={value}"]
    cmd += [image, "/bin/sh", "-c", f'. {ENV_SCRIPT}; exec "$@"', "sh", *command]
    os.execvp(cmd[0], cmd)


def main(argv: list[str]) -> None:
    while argv and argv[0] in ("--quiet", "--silent", "-q", "-s", "--debug", "-d"):
        argv = argv[1:]
    if not argv or argv[0] in ("--version", "version"):
        print(VERSION)
    elif argv[0] == "build":
        build(argv[1:])
    elif argv[0] == "exec":
        exec_(argv[1:])
    else:
        sys.exit(f"apptainer (stand-in): command {argv[0]!r} is not supported")


if __name__ == "__main__":
    main(sys.argv[1:])

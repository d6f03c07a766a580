"""File I/O at the edges: FITS images and tables, arrays, catalogues, atomic writes.

Every reader turns failures into :class:`~blendphot.errors.InputError` messages that name
the file (and the column), and every writer writes to a temporary file that is renamed into
place only when complete, so a killed job never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot.errors import BlendphotError, ConfigError, DiskFullError, InputError

__all__ = [
    "atomic_path",
    "create_array",
    "disk_full",
    "free_bytes",
    "galaxy_ids",
    "is_disk_full",
    "load_array",
    "memory_available",
    "native",
    "read_csv",
    "read_fits_image",
    "read_fits_table",
    "remove_stale_temporaries",
    "require_columns",
    "require_memory",
    "save_array",
    "write_csv",
    "write_fits_image",
    "write_fits_table",
    "write_json",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix + ".part")
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as exc:
        if isinstance(exc, BlendphotError) or not is_disk_full(exc, path):  # judged before the temporary
            raise                                                          # frees its space
        raise disk_full(path) from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the hidden temporaries (``.<name>.*.part``, :func:`atomic_path`) that a killed or
    failed write of each of ``paths`` left beside it, and inside it for a directory; returns
    them. Call it where nothing else can be writing those paths (a job, on its own outputs)."""
    removed = []
    for path in map(Path, paths):
        found = list(path.parent.glob(f".{path.name}.*.part"))
        if path.is_dir():
            found += list(path.glob(".*.part"))
        for tmp in found:
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def disk_full(path: str | os.PathLike, need: int | None = None) -> DiskFullError:
    """The error for ``path`` not fitting on its file system (``need``: its size in bytes)."""
    path = Path(path)
    left = free_bytes(path.parent)
    free = f"; {_bytes(left)} free there" if left is not None else ""
    size = f" its {_bytes(need)}" if need else " it"
    return DiskFullError(f"{path}: no space left on the device for{size}{free}. Free some space (or point "
                         "results/ at a larger disk) and run the workflow again: it resumes here")


# What writers say when the disk fills without an errno: numpy's short write, astropy's own
# free-space check, torch's stream writer, sqlite.
_FULL_TEXT = re.compile(r"no space left|not enough space|disk is full|database or disk is full", re.IGNORECASE)
# Below this, a write that failed is taken to have failed for want of space, whatever it raised.
FULL_BELOW_BYTES = 1 << 20


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the file system of ``path`` (its nearest existing parent), or None."""
    path = Path(path)
    for where in (path, *path.parents):
        if where.exists():
            try:
                return shutil.disk_usage(where).free
            except OSError:
                return None
    return None


def is_disk_full(exc: BaseException, path: str | os.PathLike) -> bool:
    """Whether ``exc``, raised while writing ``path``, means its disk is full. Writers say so in
    different ways (ENOSPC; numpy, astropy and torch raise OSError or RuntimeError without an
    errno), so the exception chain is read and, for an OSError or RuntimeError, the free space
    checked."""
    if isinstance(exc, DiskFullError):
        return True
    if not isinstance(exc, Exception) or isinstance(exc, BlendphotError):
        return False
    seen, chain = set(), [exc]
    while chain:
        e = chain.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or _FULL_TEXT.search(str(e)):
            return True
        chain += [e.__cause__, e.__context__]
    free = free_bytes(path) if isinstance(exc, (OSError, RuntimeError)) else None
    return free is not None and free < FULL_BELOW_BYTES


def memory_available() -> int | None:
    """Memory this process may use: the host's physical memory, or the job's cgroup (SLURM,
    containers) limit where lower; None when neither can be read."""
    limits = []
    with contextlib.suppress(OSError, ValueError):
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            limits.append(int(Path(cgroup).read_text().strip()))
    return min(limits) if limits else None


def require_memory(need: int, what: str, key: str) -> None:
    """Refuse, before allocating, ``need`` bytes that this host or job does not have."""
    have = memory_available()
    if have is not None and need > have:
        raise ConfigError(f"config key '{key}': {what} needs {_bytes(need)} of memory, but this job has "
                          f"{_bytes(have)}. Lower it, or ask for more memory (the profile's mem_mb).")


def _bytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _reserve(path: Path, target: Path, size: int) -> None:
    """Allocate ``size`` bytes of ``path`` now, so that a full disk is an error here and not a
    SIGBUS when a memory map's page is first written."""
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(target, size) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # e.g. some NFS: write and hope
                raise


def native(array: np.ndarray) -> np.ndarray:
    """Return ``array`` in native byte order (sep rejects big-endian FITS data)."""
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def read_fits_image(path: str | os.PathLike, *, dtype=np.float32):
    """Read the first image HDU of a FITS file.

    Returns
    -------
    data : ndarray, shape (ny, nx), native byte order, ``dtype``
    header : astropy.io.fits.Header
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.is_image and h.data is not None and h.data.ndim == 2), None)
            if hdu is None:
                raise InputError(f"{path}: no 2-D image HDU found")
            data = native(np.asarray(hdu.data)).astype(dtype, copy=False)
            header = hdu.header.copy()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError... on corrupt files
        raise InputError(f"{path}: not a readable FITS image ({type(exc).__name__}: {exc})") from exc
    return data, header


def write_fits_image(path: str | os.PathLike, data: np.ndarray, header=None) -> None:
    from astropy.io import fits

    with atomic_path(path, ".fits") as tmp:
        fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)


def read_fits_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read the first table HDU of a FITS file into a DataFrame (native byte order)."""
    from astropy.table import Table

    path = Path(path)
    try:
        table = Table.read(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable FITS table ({type(exc).__name__}: {exc})") from exc
    columns = {}
    for name in table.colnames:
        col = np.asarray(table[name])
        if col.dtype.kind == "S":
            col = np.char.decode(col, "ascii")
        columns[name] = native(col) if col.dtype.kind in "fiub" else col
    return pd.DataFrame(columns)


def write_fits_table(path: str | os.PathLike, frame: pd.DataFrame, meta: dict | None = None) -> None:
    from astropy.table import Table

    table = Table.from_pandas(frame)
    table.meta.update(meta or {})
    with atomic_path(path, ".fits") as tmp:
        table.write(tmp, format="fits", overwrite=True)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: str | os.PathLike, *,
                    keys: dict[str, str] | None = None) -> None:
    """Raise one InputError naming the first missing column and the file.

    ``keys`` maps a column to the config key that names it, added to the message.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        key = (keys or {}).get(missing[0])
        raise InputError(
            f"{source}: missing column '{missing[0]}'" + (f" (config key {key})" if key else "")
            + (f" (and {len(missing) - 1} more: {missing[1:]})" if len(missing) > 1 else "")
            + f"; available: {list(frame.columns)}"
        )


# A galaxy's id names files (gallery images, example stamps): it must be a plain file name.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def galaxy_ids(field: pd.Series, ids: pd.Series, source: str | os.PathLike, *,
               columns: tuple[str, str] = ("FIELD", "ID")) -> pd.Series:
    """The galaxy ids ``FIELD-ID`` of a catalogue, each checked to be a plain file name.

    Catalogue text is data: a value with a path separator, a leading dot, markup or anything
    but letters, digits and ``. _ + -`` is refused here, where it is read, with its row and
    column, before it can name a file or reach a page.
    """
    for column, values in zip(columns, (field, ids), strict=True):
        text = values.astype(str)
        bad = ~text.map(lambda v: bool(_PLAIN_NAME.fullmatch(v))).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{source}: data row {row + 1}, column '{column}': {text.iat[row]!r} is not a plain name "
                f"(letters, digits and . _ + - only, up to 128, not starting with . + - or _); galaxy ids "
                f"name files, so such text is refused ({int(bad.sum())} rows like it)")
    return field.astype(str) + "-" + ids.astype(str)


def read_csv(path: str | os.PathLike, required: Iterable[str] = (), **kwargs) -> pd.DataFrame:
    path = Path(path)
    try:
        frame = pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable CSV table ({exc})") from exc
    require_columns(frame, required, path)
    return frame


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array as ``.npy`` (memory-mappable with ``np.load(mmap_mode='r')``)."""
    with atomic_path(path, ".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))


@contextlib.contextmanager
def create_array(path: str | os.PathLike, shape: tuple[int, ...], dtype) -> Iterator[np.ndarray]:
    """A new ``.npy`` file as a writable memmap, renamed onto ``path`` only if the block succeeds.

    Lets a stage write outputs larger than memory, chunk by chunk, with no partial file left.
    """
    with atomic_path(path, ".npy") as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        _reserve(tmp, Path(path), tmp.stat().st_size)
        yield array
        array.flush()


def load_array(path: str | os.PathLike, *, mmap: bool = True) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from exc


def write_json(path: str | os.PathLike, obj) -> None:
    """Write strict JSON: NaN and infinities (which JSON has no words for) become null."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(text + "\n")


def _finite(obj):
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

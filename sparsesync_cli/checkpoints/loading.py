"""Safe loading of official ``.pt`` checkpoints: tensors and plain data, never code.

A ``.pt`` file is a zip holding a pickle (``data.pkl``) and one raw blob per tensor storage.
``torch.load`` with its default unpickler may run any code the pickle names; the official
SparseSync files also name OmegaConf classes (``args``) and numpy types (``metrics``) that
``weights_only=True`` refuses, and we do not want OmegaConf as a dependency. So we unpickle with
our own allow-list:

- tensors are rebuilt by our own code from the storages in the zip (``_rebuild_tensor_v2``,
  ``_rebuild_parameter`` and the ``torch.<Type>Storage`` names only tell us what to rebuild);
- plain data types are the real ones (dict, list, OrderedDict, int, ...);
- every other global becomes an INERT placeholder: a class that records what the pickle gave
  it and does nothing else. It is never imported and never called; ``args`` is rebuilt from
  these records into plain dicts;
- globals that only make sense in an attack (``os.system``, ``builtins.eval``, anything from
  ``subprocess``, ...) are refused with a :class:`CheckpointError` the moment the pickle names
  them, before anything could call them.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, first_line

if TYPE_CHECKING:
    import torch

# Modules whose globals can execute code, touch files or the network, or reach other objects:
# naming any of them means the file is not a plain checkpoint. (The placeholders would keep
# even these inert; refusing them gives the user the honest message instead.)
FORBIDDEN_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "builtins", "importlib", "runpy", "shutil",
        "pickle", "_pickle", "marshal", "socket", "ctypes", "code", "codeop", "pty", "webbrowser",
        "functools", "operator", "types", "io", "_io", "tempfile", "pathlib", "glob", "signal",
        "multiprocessing", "threading", "asyncio", "inspect", "pdb", "timeit", "urllib", "http",
        "requests", "torch", "pydoc", "copyreg", "zipimport", "pkgutil", "site", "platform", "ssl",
    }
)  # fmt: skip

# The real plain-data constructors a checkpoint may use. (Python 2 names, which protocol-2
# pickles such as torch.save's use, are mapped first.)
_PLAIN_TYPES: dict[tuple[str, str], Any] = {
    ("builtins", name): obj
    for name, obj in {
        "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
        "int": int, "float": float, "complex": complex, "bool": bool, "str": str,
        "bytes": bytes, "bytearray": bytearray, "slice": slice,
    }.items()
}  # fmt: skip
_PLAIN_TYPES.update(
    {
        ("collections", "OrderedDict"): OrderedDict,
        ("collections", "defaultdict"): defaultdict,
        ("typing", "Any"): Any,
    }
)
_PY2_NAMES = {("__builtin__", "long"): ("builtins", "int"), ("__builtin__", "unicode"): ("builtins", "str")}

# torch.<Name>Storage -> dtype name; the pickle names these to say how to read a storage blob.
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
}  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model's tensors, its config (plain resolved dict) and its path."""

    state_dict: dict[str, torch.Tensor]
    config: dict | None
    path: str


class Inert:
    """Stand-in for a global we do not trust: records constructor args, state and items.

    A subclass is made per global name (``Inert.qualname`` says which); instances are only
    ever read back by :func:`_plain`.
    """

    qualname = "?"

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None
        self.items: list[Any] = []
        self.mapping: dict[Any, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.mapping[key] = value

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


_INERT_CLASSES: dict[str, type[Inert]] = {}


def _inert_class(qualname: str) -> type[Inert]:
    cls = _INERT_CLASSES.get(qualname)
    if cls is None:
        cls = type("Inert_" + qualname.replace(".", "_"), (Inert,), {"qualname": qualname})
        _INERT_CLASSES[qualname] = cls
    return cls


@dataclass(frozen=True)
class _StorageType:
    dtype_name: str


class _Forbidden(Exception):
    """Raised inside the unpickler; turned into a CheckpointError naming the file."""


class _NotPlain(Exception):
    """The ``args`` tree holds something that is not config data."""


def _is_forbidden(module: str, name: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[: i + 1]) in FORBIDDEN_MODULES for i in range(len(parts)))


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, load_storage: Any) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        module, name = _PY2_NAMES.get((module, name), (module, name))
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
        if (module, name) in _PLAIN_TYPES:
            return _PLAIN_TYPES[(module, name)]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if _is_forbidden(module, name):
            raise _Forbidden(f"{module}.{name}")
        return _inert_class(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        # torch's zip format: ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:80]}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"a storage of unknown type {storage_type!r}")
        return self._load_storage(str(key), storage_type.dtype_name, int(numel))


def _rebuild_tensor_v2(
    storage: torch.Tensor, offset: int, size: Any, stride: Any, *_ignored: Any
) -> torch.Tensor:
    import torch

    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor without a storage")
    # as_strided checks the view stays inside the storage, so a forged size cannot read past it.
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: torch.Tensor, *_ignored: Any) -> torch.Tensor:
    return data


def _read_pickle(path: str, weights: bool = True) -> Any:
    """Unpickle the checkpoint at ``path`` with the allow-list; raise CheckpointError on any problem.

    ``weights=False``: tensors on the meta device (shapes and dtypes only, no storage read)."""
    import torch

    if not os.path.exists(path):
        raise CheckpointError("no such file", path)
    if os.path.isdir(path):
        raise CheckpointError("is a folder, not a checkpoint file", path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CheckpointError(
            "not a torch checkpoint (not a zip archive; truncated, or a legacy pre-1.6 torch file)", path
        ) from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint ({e.strerror or e})", path) from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError("not a torch checkpoint (no data.pkl in the zip archive)", path)
        prefix = pkl[0][: -len("data.pkl")]
        if (prefix + "byteorder") in names and archive.read(prefix + "byteorder").strip() != b"little":
            raise CheckpointError("big-endian checkpoints are not supported", path)
        storages: dict[str, torch.Tensor] = {}

        def load_storage(key: str, dtype_name: str, numel: int) -> torch.Tensor:
            dtype = getattr(torch, dtype_name)
            if not weights:
                return torch.empty(numel, dtype=dtype, device="meta")
            cached = storages.get(key)
            if cached is not None:
                return cached.view(dtype) if cached.dtype != dtype else cached
            member = f"{prefix}data/{key}"
            if member not in names:
                raise pickle.UnpicklingError(f"storage {key} is missing from the archive")
            # bytearray: a writable buffer, so the tensor owns mutable memory
            blob = bytearray(archive.read(member))
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if len(blob) < numel * itemsize:
                raise pickle.UnpicklingError(f"storage {key} is truncated")
            if numel == 0:
                tensor = torch.empty(0, dtype=dtype)
            else:
                tensor = torch.frombuffer(blob, dtype=dtype, count=numel)
            storages[key] = tensor
            return tensor

        try:
            with archive.open(pkl[0]) as f:
                return _SafeUnpickler(f, load_storage).load()
        except _Forbidden as e:
            raise CheckpointError(
                f"refused: the pickle asks for the forbidden global {e} (not a plain checkpoint; "
                "it could run code)",
                path,
            ) from None
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
                RuntimeError, KeyError, IndexError, AttributeError, OSError) as e:  # fmt: skip
            raise CheckpointError(f"corrupt checkpoint ({first_line(e)})", path) from None


def _plain(obj: Any, where: str = "args") -> Any:
    """Turn the placeholder OmegaConf tree of ``args`` into plain dicts, lists and scalars."""
    if isinstance(obj, Inert):
        kind = obj.qualname.rsplit(".", 1)[-1]
        state = obj.state if isinstance(obj.state, dict) else {}
        if kind in ("DictConfig", "ListConfig"):
            content = state.get("_content")
            if content is None or isinstance(content, str):
                return content  # None, "???" (missing) or a "${...}" interpolation
            return _plain(content, where)
        if obj.qualname.startswith("omegaconf.nodes.") and "_val" in state:
            return _plain(state["_val"], where)
        raise _NotPlain(f"'{where}' holds an unexpected {obj.qualname}")
    if isinstance(obj, dict):
        return {k: _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise _NotPlain(f"'{where}' holds an unexpected {type(obj).__name__}")


# The sections a model needs; see _resolve_args.
MODEL_SECTIONS = ("model", "data")


def _resolve_args(plain: dict[str, Any], path: str) -> dict[str, Any]:
    """Resolve ``${...}`` in the pickled config.

    Training runs add bookkeeping entries to ``args`` (log folders, resolvers such as
    ``${now:...}``) that we cannot or need not resolve. If the whole config does not resolve,
    the sections a model is built from are resolved on their own, so such an entry elsewhere
    does not make the weights unusable.
    """
    from ..errors import ConfigError
    from .config import resolve

    try:
        return resolve(plain)
    except ConfigError:
        pass
    try:
        return resolve({k: plain[k] for k in MODEL_SECTIONS if k in plain})
    except ConfigError as e:
        raise CheckpointError(f"its config in 'args' is invalid ({e.cause})", path) from None


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def load_checkpoint(
    path: str | os.PathLike, config_path: str | os.PathLike | None = None, *, weights: bool = True
) -> Checkpoint:
    """Load an official checkpoint (``{'model': ..., 'args': ...}``) or a bare state dict, safely.

    The config comes from ``config_path`` (a ``cfg-<id>.yaml``) when given, else from the
    checkpoint's ``args``, else it is None. Tensors keep their stored dtype (fp16 or fp32).
    Raises :class:`CheckpointError` (one line, naming the file) for a missing, truncated or
    malicious file, or one that holds no state dict. ``weights=False`` reads only the pickle:
    the tensors are on the meta device (names, shapes and dtypes, no values), for a quick look
    at what a checkpoint is before loading it.
    """
    from .config import load_config

    path = os.fspath(path)
    obj = _read_pickle(path, weights)
    if _is_state_dict(obj) and obj:
        state_dict, args = dict(obj), None
    elif isinstance(obj, dict) and _is_state_dict(obj.get("model")) and obj["model"]:
        state_dict, args = dict(obj["model"]), obj.get("args")
    else:
        raise CheckpointError("holds no model weights (neither a state dict nor a dict with 'model')", path)

    config = None
    if config_path is not None:
        config = load_config(config_path)
    elif args is not None:
        try:
            plain = _plain(args)
            if not isinstance(plain, dict):
                raise _NotPlain("'args' is not a mapping")
        except _NotPlain as e:
            raise CheckpointError(f"its config cannot be read ({e})", path) from None
        config = _resolve_args(plain, path)
    return Checkpoint(state_dict=state_dict, config=config, path=path)

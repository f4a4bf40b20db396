r"""Model files: ``.npz`` archives of a network's weights and a JSON record of what they are.

A model file is a zip archive of ``.npy`` entries, as :func:`numpy.savez` writes it:

- ``meta``: the record, a 0-d unicode array holding a JSON object: ``"format"`` (:data:`MODEL_FORMAT`),
  ``"version"`` (:data:`MODEL_VERSION`), ``"network"`` (:meth:`~fcis_twin.reference.network.NetworkConfig.to_dict`)
  and what the writer adds (the training configuration, the iteration, a checkpoint's log);
- ``params/<name>``: one entry per parameter of the network's
  :func:`~fcis_twin.reference.network.param_shapes`, float32 or float64, of that shape;
- ``state/<name>``: optional, a checkpoint's optimiser state of parameter ``<name>``, of its shape.

:func:`load_model` is the one reader (demo, evaluate, ``fcis train --resume``, the notebooks and tests all go through
it).  It trusts nothing in the file: it reads the record first, with its size bounded, checks every field of it, and
only then reads the entries that the record's network calls for, each after its size was bounded from the zip
directory and its ``.npy`` header, never with pickles.  An entry the format does not know is refused unread.
"""

import json
import math
import os
import sys
import zipfile
import zlib
from typing import NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from ._files import parse_json, replace_file
from .network import NetworkConfig, param_shapes

#: What a model file says it is.
MODEL_FORMAT = "fcis-twin-model"
MODEL_VERSION = 1
#: Longest JSON record a model file may hold, in characters (stored as 4 bytes each): room for the log of a
#: checkpoint of about 100,000 iterations.
MAX_RECORD_CHARS = 2**25
#: Longest ``.npy`` header of an entry, in bytes (numpy writes about 128).
MAX_HEADER_BYTES = 4096
#: Most parameters a model file's network may have (128 MiB of float32; the bundled network has 242,682).
MAX_PARAMETERS = 2**25
#: The dtypes weights and optimiser state may be stored as; they load as float32.
WEIGHT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ModelFile(NamedTuple):
    """What :func:`read_model_file` finds in a model file."""

    params: dict  #: name -> float32 ndarray, every parameter of ``network``
    network: NetworkConfig
    meta: dict  #: the JSON record
    state: dict  #: name -> float32 ndarray, the optimiser state stored (a subset of the parameters' names)
    dtypes: dict  #: entry name (``"params/<name>"``, ``"state/<name>"``) -> the dtype it was stored as


def save_model(path, params, network, *, extra=None, arrays=None):
    """Write ``params`` and what they are to ``path`` (an ``.npz``), atomically.

    Parameters
    ----------
    path : str or path
    params : dict of str to ndarray
    network : NetworkConfig
    extra : dict, optional
        More JSON-able facts for the record (training configuration, iteration, losses).
    arrays : dict of str to ndarray, optional
        More arrays (a checkpoint's momentum), stored under ``"state/<name>"``.

    Raises
    ------
    ValueError
        The network has more than :data:`MAX_PARAMETERS` parameters or the record would be longer than
        :data:`MAX_RECORD_CHARS` (no reader would take the file), or ``path`` is a folder or its folder does not
        exist.
    """
    if _parameter_count(network) > MAX_PARAMETERS:
        raise ValueError(f"network has {_parameter_count(network)} parameters, more than a model file may hold "
                         f"({MAX_PARAMETERS}, MAX_PARAMETERS)")
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "network": network.to_dict(), **(extra or {})}
    record = json.dumps(meta)
    if len(record) > MAX_RECORD_CHARS:
        raise ValueError(f"the record of model file {os.fsdecode(path)!r} would be {len(record)} characters long, "
                         f"more than a model file may hold ({MAX_RECORD_CHARS}, MAX_RECORD_CHARS)")
    contents = {f"params/{k}": v for k, v in params.items()}
    contents.update({f"state/{k}": v for k, v in (arrays or {}).items()})
    contents["meta"] = np.array(record)
    with replace_file("path", path) as temp, open(temp, "wb") as f:
        np.savez(f, **contents)


def load_model(path, network=None, *, name="path"):
    """Read a model file written by :func:`save_model`, checking all of it (:func:`read_model_file`).

    Parameters
    ----------
    path : str or path
    network : NetworkConfig, optional
        The configuration the caller expects; a file of another one is refused.
    name : str
        What to call ``path`` in messages: the caller's argument or option (``"--weights"``).

    Returns
    -------
    params : dict of str to float32 ndarray
    network : NetworkConfig
    meta : dict
        The file's JSON record.
    state : dict of str to float32 ndarray
        The extra arrays (empty for a plain model file).

    Raises
    ------
    TypeError
        ``path`` is not a str or path, or ``network`` not a NetworkConfig.
    ValueError
        As :func:`read_model_file`.
    """
    model = read_model_file(path, network, name=name)
    return model.params, model.network, model.meta, model.state


def read_model_file(path, network=None, *, name="path"):
    """Read and check a model file: its record, then exactly the entries its network calls for.

    Parameters
    ----------
    path : str or path
    network : NetworkConfig, optional
        The configuration the caller expects.
    name : str
        What to call ``path`` in messages.

    Returns
    -------
    ModelFile

    Raises
    ------
    TypeError
        ``path`` is not a str or path, or ``network`` not a NetworkConfig.
    ValueError
        Naming ``name`` and the path: ``path`` is missing or a folder; it is not a readable ``.npz`` archive
        (truncated, damaged, a ``.npy`` or text file); it is no model file of this project (no record, another
        format or version, a record longer than :data:`MAX_RECORD_CHARS`, nested too deeply, a network record
        with a missing, unknown or bad field, a network of more than :data:`MAX_PARAMETERS` parameters); it holds
        an entry the format does not know; its weights do not fit its network (a parameter missing, of another
        shape, stored as another dtype than float32 or float64, or not finite in float32); or its network is not
        ``network``.
    """
    try:
        text = os.fsdecode(path)
    except TypeError:
        raise TypeError(f"{name} must be a str or path, got {type(path).__name__}") from None
    if network is not None and not isinstance(network, NetworkConfig):
        raise TypeError(f"network must be a NetworkConfig or None, got {type(network).__name__}")
    where = f"{name} {text!r}"
    if os.path.isdir(path):
        raise ValueError(f"{where} is a folder, not a model file (.npz)")
    if not os.path.isfile(path):
        raise ValueError(f"{where} does not exist")
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            return _read_archive(archive, network, where)
    except _Unreadable as exc:
        raise ValueError(f"{where} is not a readable model file (.npz): {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        # a damaged archive, an unknown compression method, an encrypted entry
        hint = " (a .npy, text or truncated file?)" if isinstance(exc, zipfile.BadZipFile) else ""
        raise ValueError(f"{where} is not a readable model file (.npz){hint}: {exc}") from None


class _Unreadable(Exception):
    """An entry that cannot be read as the ``.npy`` array it should be."""


def _read_archive(archive, network, where):
    """:func:`read_model_file` on an open archive."""
    entries = {}
    for info in archive.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key in entries:
            raise _Unreadable(f"entry {key!r} appears twice")
        entries[key] = info
    if "meta" not in entries:
        raise ValueError(f"{where} is not an FCIS model file of this project (it holds no 'meta' record)")
    foreign = [k for k in entries if k != "meta" and not k.startswith(("params/", "state/"))]
    if foreign:
        raise ValueError(f"{where} is not a model file: it holds entries the format does not know: {foreign[:3]}")
    meta = _read_record(archive, entries["meta"], where)
    stored = _check_record(meta, where)
    if network is not None and stored != network:
        raise ValueError(f"{where} holds another network configuration: {stored} (expected {network})")
    if _parameter_count(stored) > MAX_PARAMETERS:
        raise ValueError(f"{where} is not a model file: its network has {_parameter_count(stored)} parameters, "
                         f"more than {MAX_PARAMETERS} (MAX_PARAMETERS)")
    shapes = param_shapes(stored)
    names = {k: k.split("/", 1)[1] for k in entries if k != "meta"}
    missing = [p for p in shapes if f"params/{p}" not in entries]
    unknown = [k for k, p in names.items() if p not in shapes]
    if missing or unknown:
        parts = [f"parameters {missing[:3]} missing"] if missing else []
        parts += [f"entries {unknown[:3]} of parameters the network does not have"] if unknown else []
        raise ValueError(f"{where} does not fit its configuration: {'; '.join(parts)}")
    arrays, dtypes = {}, {}
    for key, param in names.items():  # the record's order of entries; every name known, every size bounded
        arrays[key], dtypes[key] = _read_weights(archive, entries[key], key, shapes[param], where)
    params = {p: arrays[f"params/{p}"] for p in shapes}
    state = {p: arrays[k] for k, p in names.items() if k.startswith("state/")}
    return ModelFile(params, stored, meta, state, dtypes)


def _read_npy(archive, info, key, max_data_bytes):
    """``(dtype, shape, fortran_order, data bytes)`` of the ``.npy`` entry ``info``, whose data may take at most
    ``max_data_bytes``; the entry's size is checked against that before it is opened, and its header's before
    its data is read."""
    limit = MAX_HEADER_BYTES + max_data_bytes
    if info.file_size > limit:
        raise _Unreadable(f"entry {key!r} is {info.file_size} bytes long, more than the {limit} it may take")
    with archive.open(info) as f:
        try:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
            else:
                raise ValueError(f"an .npy format version {version} that model files do not use")
        except (ValueError, SyntaxError, TypeError, EOFError) as exc:
            raise _Unreadable(f"entry {key!r} is not an .npy array: {exc}") from None
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise _Unreadable(f"entry {key!r} is stored as {dtype}, not as an array of numbers or text")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > max_data_bytes:
            return dtype, shape, fortran, None  # the caller names what is wrong with the header
        if info.file_size != f.tell() + nbytes:
            raise _Unreadable(f"entry {key!r} is {info.file_size} bytes long where its header calls for "
                              f"{f.tell() + nbytes}")
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):  # the read to the end also checks the entry's CRC
            raise _Unreadable(f"entry {key!r} is truncated")
    return dtype, shape, fortran, data


def _read_record(archive, info, where):
    """The JSON record of the entry ``meta``: read with its size bounded, parsed with its nesting bounded."""
    dtype, shape, _, data = _read_npy(archive, info, "meta", 4 * MAX_RECORD_CHARS)
    if dtype.kind != "U" or shape != ():
        raise ValueError(f"{where} is not a model file: its 'meta' entry is a {dtype} array of shape {shape}, not "
                         "the JSON record (a text scalar)")
    if data is None:
        raise ValueError(f"{where} is not a model file: its record is longer than {MAX_RECORD_CHARS} characters "
                         "(MAX_RECORD_CHARS)")
    big = dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")
    try:
        text = data.decode("utf-32-be" if big else "utf-32-le").rstrip("\0")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not a model file: its record is not text: {exc}") from None
    return parse_json(text, f"{where} is not a model file: its record")


def _check_record(meta, where):
    """The network of a record, after every field the format defines was checked."""
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{where} is not an FCIS model file of this project (its record's format is not "
                         f"{MODEL_FORMAT!r})")
    version = meta.get("version")
    if type(version) is not int or version != MODEL_VERSION:
        raise ValueError(f"{where} is not a model file this version of fcis_twin reads: its format version is "
                         f"{_short(version)}, this one reads version {MODEL_VERSION}")
    if "network" not in meta:
        raise ValueError(f"{where} is not a model file: its record has no 'network'")
    try:
        network = NetworkConfig.from_dict(meta["network"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is not a model file: its record's network: {exc}") from None
    for key, kind in (("iteration", int), ("seed", int), ("log", list), ("train", dict), ("losses", dict),
                      ("proposals", dict)):  # what the training loop writes, where present
        if key in meta and not (isinstance(meta[key], kind) and not isinstance(meta[key], bool)
                                and (kind is not int or meta[key] >= 0)):
            expected = "an int >= 0" if kind is int else f"a JSON {'array' if kind is list else 'object'}"
            raise ValueError(f"{where} is not a model file: its record's {key!r} must be {expected}, got "
                             f"{_short(meta[key])}")
    return network


def _parameter_count(network):
    """How many floats the weights of ``network`` are."""
    return sum(math.prod(shape) for shape in param_shapes(network).values())


def _read_weights(archive, info, key, shape, where):
    """``(float32 array, stored dtype)`` of a parameter or state entry, which must have ``shape``."""
    dtype, stored_shape, fortran, data = _read_npy(archive, info, key, math.prod(shape) * 8)
    if tuple(stored_shape) != tuple(shape):
        raise ValueError(f"{where} does not fit its configuration: entry {key!r} has shape {tuple(stored_shape)}, "
                         f"expected {tuple(shape)}")
    if dtype.newbyteorder("=") not in WEIGHT_DTYPES:
        raise ValueError(f"{where} is not a model file: entry {key!r} is stored as {dtype}; model files hold "
                         "float32 or float64 weights")
    values = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    with np.errstate(over="ignore", invalid="ignore"):
        values = values.astype(np.float32)  # a copy: writable, native order
    if not np.isfinite(values).all():
        raise ValueError(f"{where} does not hold usable weights: entry {key!r} holds NaN, infinite values or values "
                         "beyond float32's range")
    return values, dtype.newbyteorder("=")


def _short(value):
    """``repr(value)``, cut to 60 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

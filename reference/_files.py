"""Files in and out: reading a JSON file with clear errors, and writing files and folders all at once.

:func:`read_json` turns every way a JSON file can fail to load (missing, unreadable, not JSON, nested too deeply)
into a ``ValueError`` naming the argument and the path.

The writers never leave a half-written result where the final one belongs.  :func:`replace_file` and
:func:`replace_folder` hand out a temporary sibling (a hidden name beside the target, on the same file system), and
only when the block that fills it ends normally is it renamed into place; on any exception, ``KeyboardInterrupt``
included, the temporary is removed and the target is left as it was.  Files and folders are created with the
process's default permissions (its umask applies).
"""

import contextlib
import json
import os
import secrets
import shutil
import sys
from pathlib import Path


def read_json(name, path):
    """The parsed contents of the JSON file ``path``.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    path : str or path

    Returns
    -------
    data : dict, list, str, int, float, bool or None

    Raises
    ------
    TypeError
        ``path`` is not a str or path.
    ValueError
        ``path`` is not a file, cannot be read, is not valid JSON (text in UTF-8, UTF-16 or UTF-32), or is
        nested more deeply than Python's recursion limit allows to parse.

    Notes
    -----
    Python's reading of JSON is kept: ``NaN``, ``Infinity`` and ``-Infinity`` are read as floats, left to the
    callers' checks of finiteness.
    """
    text = _path_text(name, path)
    if not os.path.isfile(path):
        raise ValueError(f"{name} {text!r} is not a file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"{name} {text!r} cannot be read: {exc.strerror or exc}") from None
    return parse_json(data, f"{name} {text!r}")


def parse_json(data, what):
    """JSON text or bytes, parsed; every way that fails (nesting deeper than Python's recursion limit, bad text or
    encoding, an integer of too many digits) is a ``ValueError`` whose message begins with ``what``."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to read (Python's recursion limit is "
                         f"{sys.getrecursionlimit()})") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise ValueError(f"{what} is not valid JSON: {exc}") from None


def _path_text(name, path):
    """``path`` as text for messages; TypeError when it is not a path at all."""
    try:
        return os.fsdecode(path)
    except TypeError:
        raise TypeError(f"{name} must be a str or path, got {type(path).__name__}") from None


def check_folder_target(name, folder, *, overwrite=False, overwrite_hint="overwrite=True"):
    """Check that ``folder`` may receive a new set: missing, an empty folder, or any folder when ``overwrite``.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    folder : str or path
    overwrite : bool
        Whether a folder that holds something may be replaced.
    overwrite_hint : str
        How the caller lets a user replace a folder, for the message (``"--overwrite"`` on the command line).

    Returns
    -------
    folder : pathlib.Path
        The folder with symbolic links resolved, so that its siblings lie on its own file system.

    Raises
    ------
    TypeError
        ``folder`` is not a str or path, or ``overwrite`` not a bool.
    ValueError
        ``folder`` is empty text, exists and is not a folder, is the root or holds the current folder (which
        replacing it would pull from under the process), or holds something and ``overwrite`` is False.
    """
    text = _path_text(name, folder)
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {type(overwrite).__name__}")
    if not text:
        raise ValueError(f"{name} must not be empty")
    target = Path(os.path.realpath(folder))
    if target.exists() and not target.is_dir():
        raise ValueError(f"{name} {text!r} exists and is not a folder")
    here = Path(os.path.realpath(os.getcwd()))
    if target == target.parent or (target.is_dir() and (here == target or target in here.parents)):
        raise ValueError(f"{name} {text!r} holds the current folder (or is the root); give another folder")
    if not overwrite and target.is_dir() and any(target.iterdir()):
        raise ValueError(f"{name} {text!r} exists and is not empty; use {overwrite_hint} to replace it")
    return target


@contextlib.contextmanager
def replace_folder(name, folder, *, overwrite=False, overwrite_hint="overwrite=True"):
    """Fill a new folder under a temporary name, then move it to ``folder`` in one step.

    Yields the temporary folder (a fresh, empty sibling of ``folder``).  When the ``with`` block ends normally, a
    folder already at ``folder`` is moved aside, the new one renamed into its place and the old one deleted; on
    any exception the temporary folder is deleted and ``folder`` is left as it was.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    folder : str or path
        The target, checked by :func:`check_folder_target` on entry and again before the move (its parent folders
        are created when missing).
    overwrite : bool
        Replace a folder that holds something; otherwise such a folder is a ``ValueError``.
    overwrite_hint : str
        As in :func:`check_folder_target`.

    Notes
    -----
    The old set is never half gone while the new one is missing: the old folder is renamed aside whole, the new
    one renamed into place, and only then is the old one deleted.  An interruption between the two renames puts
    the old folder back; one during the final deletion may leave a hidden ``.NAME.old-*`` folder beside the new
    set, which can be deleted.
    """
    target = check_folder_target(name, folder, overwrite=overwrite, overwrite_hint=overwrite_hint)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} {_path_text(name, folder)!r}: its parent folder cannot be created: "
                         f"{exc.strerror or exc}") from None
    temp = _fresh(name, _path_text(name, folder), target, ".tmp", os.mkdir)
    try:
        yield temp
        check_folder_target(name, folder, overwrite=overwrite, overwrite_hint=overwrite_hint)  # still allowed?
        _move_into_place(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _move_into_place(temp, target):
    """Rename ``temp`` to ``target``; an existing ``target`` is renamed aside first and deleted last."""
    aside = None
    try:
        if os.path.lexists(target):
            aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
            os.rename(target, aside)
        os.rename(temp, target)
    except BaseException:
        if aside is not None and os.path.lexists(aside) and not os.path.lexists(target):
            os.rename(aside, target)  # the old folder back where it was
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _fresh(name, text, target, suffix, make):
    """Create a new hidden sibling ``.NAME.XXXXXXXX<suffix>`` of ``target`` with ``make`` (``os.mkdir`` or
    :func:`_make_file`) and return its path; ``text`` names the target in messages."""
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            make(temp)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ValueError(f"{name} {text!r} cannot be written: {exc.strerror or exc}") from None
        return temp
    raise ValueError(f"{name} {text!r}: no free temporary name beside it")


def _make_file(path):
    """Create ``path`` as a new empty file; FileExistsError when it exists."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def replace_file(name, path):
    """Write a new file under a temporary name in the same folder, then move it to ``path`` in one step.

    Yields the path of the temporary file (created empty, to be written by name); when the ``with`` block ends
    normally it replaces ``path`` with ``os.replace``.  On any exception it is deleted and ``path`` is left as it
    was.  The folder must exist.

    Raises
    ------
    ValueError
        ``path`` is a folder, or its folder is missing or cannot be written (on entry, before anything is done).
    """
    text = _path_text(name, path)
    path = Path(os.path.realpath(path))
    if path.is_dir():
        raise ValueError(f"{name} {text!r} is a folder, not a file")
    if not path.parent.is_dir():
        raise ValueError(f"{name} {text!r}: its folder does not exist")
    temp = _fresh(name, text, path, ".tmp", _make_file)
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def writable_folder(name, folder):
    """Make sure ``folder`` is a folder this process can write into, creating it (and its parents) when missing.

    Returns
    -------
    folder : pathlib.Path
        As given.

    Raises
    ------
    ValueError
        ``folder`` exists and is not a folder, cannot be created, or cannot be written.
    """
    text = _path_text(name, folder)
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise ValueError(f"{name} {text!r} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} {text!r} cannot be created: {exc.strerror or exc}") from None
    probe = _fresh(name, text, Path(os.path.realpath(folder)) / "probe", ".tmp", _make_file)  # can we write there?
    os.unlink(probe)
    return folder

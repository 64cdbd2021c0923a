"""Reading a python config file: errors named by file and line, top-level variables overridable.

mmengine parses a config with ``ast.parse`` of its text and no file name, so a syntax error in a
config (or in one of its ``_base_`` files) surfaces as a long traceback ending in
``File "<unknown>"``. :func:`read_config_file` checks the syntax of the file and of every base
first and reports ``config file '<path>', line N: ...`` in one line; an exception raised by a
statement of a config (a ``NameError`` ...) is reported the same way.

Top-level *variables* of a python config (``max_iters = 300``, then ``train_cfg =
dict(max_iters=max_iters)``) are copied into the dicts that use them when the file is executed,
so merging a new value afterwards changes nothing. :func:`read_config_file` instead re-reads the
config with the variable's assignments replaced (``variables``), as if those lines had been
edited: in the file itself and in every base file that assigns it, so every key computed from
it follows, wherever it is used. Edited copies go to a temporary folder (with ``_base_``
entries pointing at the originals, or at the copies of edited bases); errors and the
returned config name the original files.
"""

from __future__ import annotations

import ast
import os
import os.path as osp
import re
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from mmengine.config import Config

from seg_sparse.errors import UserInputError, one_line
from seg_sparse.fileio import check_input_file

BASE_KEY = "_base_"
#: mmengine's predefined variables (``{{fileDirname}}`` ...) and how each is derived from the
#: config's path; substituted with the original file's values when it is re-read elsewhere.
_PREDEFINED = {
    "fileDirname": lambda p: osp.dirname(p),
    "fileBasename": lambda p: osp.basename(p),
    "fileBasenameNoExtension": lambda p: osp.splitext(osp.basename(p))[0],
    "fileExtname": lambda p: osp.splitext(p)[1],
}


class ConfigError(UserInputError, ValueError):
    """A config file or option that cannot be used as given (missing file, data root ...)."""


def read_config_file(path: str, variables: Mapping[str, Any] | None = None) -> Config:
    """``Config.fromfile(path)`` with errors naming the file and line, and the top-level
    ``variables`` (name -> value) of the file and its bases replaced before they run."""
    check_input_file(path, "config file")
    chain = config_chain(path)  # checks the syntax of the file and every base
    if variables:
        return _read_with_variables(path, dict(variables), chain)
    return _fromfile(path, chain)


def config_chain(path: str) -> list[str]:
    """``path`` and its ``_base_`` files, recursively (files of another package, named
    ``scope::path``, are left out); raises :class:`ConfigError` on a syntax error in any."""
    chain: list[str] = []
    pending = [path]
    while pending:
        current = pending.pop(0)
        if osp.abspath(current) in map(osp.abspath, chain) or not osp.isfile(current):
            continue  # a missing base is reported by mmengine, naming it
        chain.append(current)
        pending += [osp.normpath(osp.join(osp.dirname(current), base))
                    for base in base_files(_parse(current)) if "::" not in base]
    return chain


def assigned_variables(path: str) -> set[str]:
    """Names assigned at the top level of the file itself (``name = ...``), ``_base_`` aside."""
    return {name for name, _ in _top_level_assignments(_parse(path))} - {BASE_KEY}


def chain_variables(path: str) -> set[str]:
    """Names assigned at the top level of ``path`` or of any of its base files."""
    return set().union(*(assigned_variables(file) for file in config_chain(path)))


def variable_source(path: str, name: str) -> str | None:
    """The first file of ``path``'s chain (the file itself, then its bases) assigning ``name``."""
    return next((file for file in config_chain(path) if name in assigned_variables(file)), None)


def base_files(tree: ast.Module) -> list[str]:
    """The literal ``_base_`` entries of a parsed config ([] without ``_base_``)."""
    for name, node in _top_level_assignments(tree):
        if name == BASE_KEY:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return []


def _parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as err:
        code = f": {err.text.strip()}" if err.text and err.text.strip() else ""
        raise ConfigError(f"config file '{path}', line {err.lineno}: {err.msg}{code}") from None


def _top_level_assignments(tree: ast.Module) -> Iterator[tuple[str, ast.Assign]]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            yield node.targets[0].id, node


def _fromfile(path: str, chain: list[str], names: Mapping[str, str] | None = None) -> Config:
    """``Config.fromfile``; an error raised by a statement of a file of ``chain`` is reported
    naming that file and line (``names``: absolute path -> name to show, for copies)."""
    names = {**{osp.abspath(p): p for p in chain}, **(names or {})}
    try:
        return Config.fromfile(path)
    except Exception as err:
        located = _statement_of(err, names)
        if located is None:
            raise
        file, line = located
        raise ConfigError(f"config file '{file}', line {line}: {type(err).__name__}: "
                          f"{one_line(err)}") from err


def _statement_of(err: BaseException, names: Mapping[str, str]) -> tuple[str, int] | None:
    """(file, line) of the innermost config statement in ``err``'s traceback, if any
    (``names``: absolute path -> name to show; mmengine compiles each config file under its
    absolute path)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename in names]
    if not frames:
        return None
    return names[frames[-1].filename], frames[-1].lineno or 0


def _read_with_variables(path: str, variables: dict[str, Any], chain: list[str]) -> Config:
    """Execute copies of the files of ``path``'s chain that assign one of ``variables`` (with
    the new values) or inherit from such a file (with ``_base_`` pointing at the copies and the
    other bases by absolute path), and report errors and the config under the original names."""
    with tempfile.TemporaryDirectory(prefix="seg_sparse_cfg_") as folder:
        copies: dict[str, str] = {}  # original (absolute) -> copy
        leaf = _materialize(osp.abspath(path), variables, folder, copies)
        names = {copy: original for original, copy in copies.items()}
        names[leaf] = path
        cfg = _fromfile(leaf, [], names=names)
    return Config(cfg._cfg_dict, cfg_text=cfg.text.replace(leaf, path, 1), filename=path,
                  env_variables=cfg.env_variables)


def _materialize(file: str, variables: Mapping[str, Any], folder: str,
                 copies: dict[str, str]) -> str:
    """``file`` itself when neither it nor a base assigns one of ``variables``, else its edited
    copy under ``folder`` (same base name, own subfolder); ``copies`` collects them."""
    if file in copies:
        return copies[file]
    with open(file, encoding="utf-8") as f:
        text = f.read()
    for name, derive in _PREDEFINED.items():
        text = re.sub(r"\{\{\s*" + name + r"\s*\}\}", derive(file), text)
    tree = ast.parse(text, filename=file)
    bases = base_files(tree)
    resolved = [b if "::" in b else osp.normpath(osp.join(osp.dirname(file), b)) for b in bases]
    used = [b if "::" in b or not osp.isfile(b) else _materialize(b, variables, folder, copies)
            for b in resolved]
    edits = [(node.value, repr(variables[name]))
             for name, node in _top_level_assignments(tree) if name in variables]
    if not edits and used == resolved:
        return file
    edits += [(node.value, repr(used)) for name, node in _top_level_assignments(tree)
              if name == BASE_KEY]
    copy = osp.join(folder, str(len(copies)), osp.basename(file))
    os.makedirs(osp.dirname(copy))
    with open(copy, "w", encoding="utf-8") as f:
        f.write(_replaced(text, edits))
    copies[file] = copy
    return copy


def _replaced(text: str, edits: list[tuple[ast.expr, str]]) -> str:
    """``text`` with each node's source replaced (ast offsets are UTF-8 byte columns)."""
    data = text.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans = sorted(((starts[n.lineno - 1] + n.col_offset,
                     starts[n.end_lineno - 1] + n.end_col_offset, new)  # type: ignore[operator]
                    for n, new in edits), reverse=True)
    for begin, end, new in spans:
        data = data[:begin] + new.encode("utf-8") + data[end:]
    return data.decode("utf-8")

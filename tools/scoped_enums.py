"""Find (and fix) unscoped enum spellings of QGIS/Qt classes: Qt6 / QGIS 4 reject them.

``QgsProcessingParameterNumber.Integer`` works with PyQt5 only; the scoped
``QgsProcessingParameterNumber.Type.Integer`` works on QGIS 3.22 to 3.44 and on
QGIS 4 (PyQt6, where enums are Python enums).  This scans Python files, resolves
every ``Name.Member`` whose ``Name`` is imported from ``qgis.core``, ``qgis.gui``,
``qgis.analysis`` or ``qgis.PyQt.*`` against the QGIS it runs in, and reports a
member that is an enum value reached without its enum type.  It also reports
``anything.Member`` where ``Member`` is an enum value name of a class the file
imports (``param.FlagAdvanced`` on an instance), unless reached through an enum type.

    python tools/scoped_enums.py [--fix] FILE_OR_DIR...

``--fix`` rewrites the class-level cases in place (``Cls.Member`` ->
``Cls.Enum.Member``, ``Enum`` being the attribute of ``Cls`` that holds the enum); run it
on QGIS 3.22, whose enum names exist on every later version.  Used by ``tests/qgis/test_qt6.py``.
"""

import ast
import enum
import importlib
import sys
from pathlib import Path

QGIS_MODULES = ("qgis.core", "qgis.gui", "qgis.analysis")


def _is_enum_value(value):
    if isinstance(value, enum.Enum):
        return True
    meta = type(type(value))
    return isinstance(value, int) and type(value) is not int and meta.__name__ in (
        "enumtype", "EnumType", "sipEnumType")


def _is_enum_type(value):
    if not isinstance(value, type):
        return False
    return issubclass(value, enum.Enum) or type(value).__name__ in ("enumtype", "EnumType",
                                                                     "sipEnumType")


def _imported_classes(tree):
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module in QGIS_MODULES or node.module.startswith("qgis.PyQt.")):
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                continue
            for alias in node.names:
                obj = getattr(module, alias.name, None)
                if isinstance(obj, type):
                    names[alias.asname or alias.name] = obj
    return names


def _enum_members(cls):
    """``{member name: enum attribute name}`` of the enum values reachable unscoped on ``cls``.

    The enum's name is the attribute of ``cls`` that holds it (``QgsProcessingParameterNumber.Type``,
    also on 3.40+ where that is an alias of ``Qgis.ProcessingNumberParameterType``).
    """
    values, enum_types = {}, {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        try:
            value = getattr(cls, name)
        except Exception:  # noqa: BLE001 (some sip descriptors raise on class access)
            continue
        if _is_enum_type(value):
            enum_types[name] = value
        elif _is_enum_value(value):
            values[name] = value
    members = {}
    for name, value in values.items():
        holders = [attr for attr, enum_type in enum_types.items()
                   if isinstance(value, enum_type) and getattr(enum_type, name, None) == value]
        members[name] = holders[0] if holders else type(value).__name__
    return members


def scan_source(source, filename="<string>"):
    """``[(line, col, end_col, text, scoped)]`` for each unscoped enum spelling in ``source``.

    ``scoped`` is the scoped replacement when it can be derived (class-level), else None.
    """
    tree = ast.parse(source, filename)
    classes = _imported_classes(tree)
    members = {name: _enum_members(cls) for name, cls in classes.items()}
    any_member = {}
    for table in members.values():
        for member, enum_name in table.items():
            any_member.setdefault(member, enum_name)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in classes:
            enum_name = members[base.id].get(node.attr)
            if enum_name:
                found.append((node.lineno, node.col_offset, node.end_col_offset,
                              f"{base.id}.{node.attr}", f"{base.id}.{enum_name}.{node.attr}"))
            continue
        if node.attr in any_member:
            # reached through an enum type (X.Flag.FlagAdvanced) is fine
            if isinstance(base, ast.Attribute) and base.attr[:1].isupper() and \
                    base.attr not in any_member:
                continue
            if isinstance(base, ast.Name) and base.id[:1].isupper():
                continue  # a class the file defines or does not import from QGIS
            found.append((node.lineno, node.col_offset, node.end_col_offset,
                          f"{ast.unparse(base)}.{node.attr}", None))
    return sorted(found)


def python_files(paths):
    """The ``.py`` files of ``paths`` (files, or folders searched recursively)."""
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if ".pkg" not in p.parts)
        else:
            yield path


def fix_source(source, found):
    """``source`` with the unscoped enums in ``found`` replaced by their scoped spelling."""
    lines = source.splitlines(keepends=True)
    for line, col, end, _text, scoped in sorted(found, reverse=True):
        if scoped is None:
            continue
        text = lines[line - 1].encode("utf-8")  # ast's columns count UTF-8 bytes
        lines[line - 1] = (text[:col] + scoped.encode("utf-8") + text[end:]).decode("utf-8")
    return "".join(lines)


def main(argv):
    """Command line entry point: list (or ``--fix``) unscoped enums in ``argv``'s paths."""
    fix = "--fix" in argv
    paths = [a for a in argv if a != "--fix"]
    total = 0
    for path in python_files(paths):
        source = path.read_text(encoding="utf-8")
        found = scan_source(source, str(path))
        for line, col, _end, text, scoped in found:
            print(f"{path}:{line}:{col + 1}: {text}" + (f" -> {scoped}" if scoped else ""))
        total += len(found)
        if fix and any(f[4] for f in found):
            path.write_text(fix_source(source, found), encoding="utf-8")
    print(f"{total} unscoped enum spelling(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

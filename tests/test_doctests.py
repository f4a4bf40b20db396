"""The examples in every docstring run, imported under the installed names, and print what they show."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("fcis_twin", "fcis_twin.reference", "fcis_twin.accelerated")
NOT_IMPORTED = {"fcis_twin.__main__"}  # runs the command line when imported


def _modules():
    """Every module of the three packages, by its installed name."""
    names = set(PACKAGES)
    for package in PACKAGES:
        path = importlib.import_module(package).__path__[:1]  # the package's own folder
        names.update(info.name for info in pkgutil.iter_modules(path, package + "."))
    return sorted(names - NOT_IMPORTED)


def _doctests():
    """``(module name, DocTest)`` for every docstring with examples: modules, functions, classes and methods."""
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        found += [(name, t) for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    return found


DOCTESTS = _doctests()


def test_the_stage_modules_have_examples():
    """Every stage module of both halves shows an example (a module lost from the search would show here)."""
    stages = ("boxes", "anchors", "proposals", "score_maps", "nms", "assemble", "joint", "paste", "voting")
    expected = {f"fcis_twin.reference.{s}" for s in stages}
    expected |= {f"fcis_twin.accelerated.{s}" for s in ("nms", "assemble", "paste", "voting")}
    assert expected <= {name for name, _ in DOCTESTS}


@pytest.mark.parametrize("test", [t for _, t in DOCTESTS], ids=[t.name for _, t in DOCTESTS])
def test_docstring_examples(test):
    """Each example gives exactly the output its docstring shows."""
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)

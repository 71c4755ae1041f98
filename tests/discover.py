#!/usr/bin/env python3
"""Register docq's tests with ctest from the test code itself, where each test's name (a
sentence) is written once.

  discover.py python <function> <out.cmake> <test_*.py>...
      Called at configure time. Writes a CMake file calling
      <function>(<sentence> <module> <Class.method> [labels...]) for each test method of the
      files: its sentence is the first paragraph of its docstring (lines joined by spaces), its
      labels those of a @labels("...") decorator; a @needs("VAR") decorator registers it only
      where the CMake variable VAR is true. The modules are read with ast, never imported.
  discover.py unit <exe> <out.cmake> <workdir> [--label L]... [--env NAME=VALUE]...
      Called after each build of a unit test executable. Writes a ctest script registering each
      line "<case>\\t<sentence>" of `<exe> --list` as the test <sentence> running `<exe> <case>`.

Either way a test without a sentence, an empty sentence, one holding a ';' (CMake would split
it) or two tests with one sentence stop it with an error naming them, so no test is silently
skipped.
"""
import argparse
import ast
import os
import subprocess
import sys


def fail(msg):
    sys.exit("discover.py: " + msg)


def bracket(s):
    """s as a CMake bracket argument, which takes every character as it is."""
    eq = "="
    while "]" + eq + "]" in s:
        eq += "="
    return "[%s[%s]%s]" % (eq, s, eq)


def check_sentences(found):
    """Stop unless every (sentence, where) of found has a usable, distinct sentence."""
    seen = {}
    for sentence, where in found:
        if not sentence:
            fail("%s has no sentence" % where)
        if ";" in sentence:
            fail("%s: its sentence holds a ';': %s" % (where, sentence))
        if sentence in seen:
            fail("%s and %s have the same sentence: %s" % (seen[sentence], where, sentence))
        seen[sentence] = where


def decorator_args(fn, name, where):
    """The string arguments of fn's @name(...) decorator, or None without one."""
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == name:
            if not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in d.args):
                fail("%s: @%s takes string literals only" % (where, name))
            return [a.value for a in d.args]
    return None


def python_tests(path):
    """Yield (sentence, where, module, Class.method, labels, needs) for each test method."""
    module = os.path.splitext(os.path.basename(path))[0]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or \
                    not fn.name.startswith("test"):
                continue
            where = "%s:%d: %s.%s" % (path, fn.lineno, cls.name, fn.name)
            doc = ast.get_docstring(fn)
            if doc is None:
                fail("%s has no docstring: its first paragraph is the test's name" % where)
            sentence = " ".join(doc.split("\n\n")[0].split())
            needs = decorator_args(fn, "needs", where)
            if needs is not None and len(needs) != 1:
                fail("%s: @needs takes one CMake variable" % where)
            yield (sentence, where, module, cls.name + "." + fn.name,
                   decorator_args(fn, "labels", where) or [], needs[0] if needs else None)


def write_if_changed(path, text):
    """Write text to path unless it holds it already (so nothing depending on it reruns)."""
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        f.write(text)


def discover_python(args):
    tests = [t for path in sorted(args.files) for t in python_tests(path)]
    check_sentences([(t[0], t[1]) for t in tests])
    lines = ["# Written by tests/discover.py from the docstrings of the test methods.\n"]
    for sentence, _, module, method, labels, needs in tests:
        call = "%s(%s %s %s)\n" % (args.function, bracket(sentence), module,
                                   " ".join([method] + labels))
        lines.append("if(%s)\n  %sendif()\n" % (needs, call) if needs else call)
    write_if_changed(args.out, "".join(lines))


def discover_unit(args):
    if os.path.exists(args.out):
        os.remove(args.out)
    try:
        out = subprocess.run([args.exe, "--list"], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail("%s --list: %s" % (args.exe, e))
    cases = [line.split("\t", 1) for line in out.splitlines()]
    for case in cases:
        if len(case) != 2:
            fail("%s --list: not <case>\\t<sentence>: %s" % (args.exe, case[0]))
    check_sentences([(s, "%s case %s" % (args.exe, c)) for c, s in cases])
    props = 'LABELS "%s" WORKING_DIRECTORY "%s"' % (";".join(args.label), args.workdir)
    if args.env:
        props += ' ENVIRONMENT "%s"' % ";".join(args.env)
    lines = ["# Written by tests/discover.py from %s --list.\n" % args.exe]
    for case, sentence in cases:
        lines.append('add_test(%s "%s" "%s")\n' % (bracket(sentence), args.exe, case))
        lines.append("set_tests_properties(%s PROPERTIES %s)\n" % (bracket(sentence), props))
    write_if_changed(args.out, "".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    py = sub.add_parser("python")
    py.add_argument("function")
    py.add_argument("out")
    py.add_argument("files", nargs="+")
    unit = sub.add_parser("unit")
    unit.add_argument("exe")
    unit.add_argument("out")
    unit.add_argument("workdir")
    unit.add_argument("--label", action="append", default=[])
    unit.add_argument("--env", action="append", default=[])
    args = p.parse_args()
    (discover_python if args.mode == "python" else discover_unit)(args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The include-circle checker (scripts/import-circles) on planted sources.

Usage: test_import_circles.py PATH-TO-import-circles

A circle through three modules is planted in a temporary directory, with a
.c and its .h counted as one module and a header from elsewhere ignored: the
checker must name exactly the circle's modules and exit 1. Once one include
is removed it must print nothing and exit 0.
"""
import os
import subprocess
import sys
import tempfile


def write(d, name, *includes):
    with open(os.path.join(d, name), 'w') as f:
        for inc in includes:
            f.write('#include "%s"\n' % inc)


def run(checker, d):
    p = subprocess.run([sys.executable, checker, d], capture_output=True, text=True)
    return p.returncode, p.stdout


def main():
    checker = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as d:
        # alpha -> beta (alpha.c includes beta.h), beta -> gamma (beta.h
        # includes gamma.h), gamma -> alpha (gamma.c includes alpha.h): a
        # circle only when a .c and its .h are one module. leaf and log.h
        # (not in the directory) are outside it.
        write(d, 'alpha.h')
        write(d, 'alpha.c', 'alpha.h', 'beta.h', 'leaf.h', 'log.h')
        write(d, 'beta.h', 'gamma.h')
        write(d, 'gamma.h')
        write(d, 'gamma.c', 'gamma.h', 'alpha.h')
        write(d, 'leaf.h', 'log.h')
        rc, out = run(checker, d)
        base = os.path.normpath(d)
        want = ', '.join(os.path.join(base, m) for m in ('alpha', 'beta', 'gamma'))
        if rc != 1:
            failures.append('planted circle: exit %d, expected 1' % rc)
        if ('circle of 3 modules: %s' % want) not in out or 'leaf' in out:
            failures.append('planted circle: expected exactly alpha, beta, gamma named, got:\n' + out)
        # Break it: gamma no longer includes alpha.
        write(d, 'gamma.c', 'gamma.h')
        rc, out = run(checker, d)
        if rc != 0 or out:
            failures.append('broken circle: exit %d with output %r, expected 0 and nothing' % (rc, out))
    for f in failures:
        print('FAIL: ' + f)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())

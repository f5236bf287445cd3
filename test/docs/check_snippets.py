#!/usr/bin/env python3
"""Compiles every C++ block of the given Markdown files, each as a translation unit of its own.

    check_snippets.py [-j N] FILE.md|DIR... -- COMPILER [FLAGS...]

A block fenced as ```cpp (or ```c++) is written to a file of its own, behind a #line directive
naming the Markdown file and the block's first line, and compiled with COMPILER FLAGS
-fsyntax-only: a block that does not compile fails with the compiler's message, located at
README.md:LINE. A fence with no language at all fails too (write ```text or ```sh for what is
not C++), so no C++ escapes the check unlabelled. A DIR stands for the *.md files in it.
Snippets must therefore be whole translation units: their includes, and a function or main.
Exits 0 if every block compiled, 1 if one did not, 2 on bad usage.
"""

import concurrent.futures
import os
import pathlib
import re
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
CPP = {"cpp", "c++", "cxx"}


def blocks(path):
    """Yields (first line number, language, code) for each fenced block of a Markdown file."""
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group("indent")), m.group("fence"), m.group("info").lower()
        start = i + 1  # 0-based index of the first code line
        j = start
        while j < len(lines):
            close = FENCE.match(lines[j])
            if close and close.group("fence").startswith(fence) and not close.group("info"):
                break
            j += 1
        code = [line[indent:] if line[:indent].isspace() else line.lstrip() for line in lines[start:j]]
        yield start + 1, info, "\n".join(code) + "\n", i + 1
        i = j + 1


def compile_block(cmd, md, first_line, code, scratch):
    name = pathlib.Path(scratch) / f"{pathlib.Path(md).stem}_{first_line}.cpp"
    # The #line directive makes every diagnostic point into the Markdown file itself.
    name.write_text(f'#line {first_line} "{md}"\n{code}', encoding="utf-8")
    run = subprocess.run(cmd + ["-fsyntax-only", "-x", "c++", str(name)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return run.returncode, run.stdout


def main(argv):
    jobs = os.cpu_count() or 1
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    inputs, cmd = argv[:split], argv[split + 1:]
    if len(inputs) >= 2 and inputs[0] == "-j":
        jobs, inputs = max(1, int(inputs[1])), inputs[2:]
    if not inputs or not cmd:
        print(__doc__, file=sys.stderr)
        return 2

    files = []
    for p in inputs:
        files += sorted(str(f) for f in pathlib.Path(p).glob("*.md")) if os.path.isdir(p) else [p]

    failed = 0
    compiled = 0
    work = []  # (markdown file, first code line, code)
    for md in files:
        for first, info, code, fence_line in blocks(md):
            if info == "":
                print(f"{md}:{fence_line}: a fenced block with no language: write ```cpp for C++ "
                      "(compiled) or ```text / ```sh / ... for anything else")
                failed += 1
            elif info in CPP:
                work.append((md, first, code))

    with tempfile.TemporaryDirectory(prefix="lancer-snippets-") as scratch:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            runs = [pool.submit(compile_block, cmd, md, first, code, scratch)
                    for md, first, code in work]
            for (md, first, _), run in zip(work, runs):
                rc, out = run.result()
                if rc == 0:
                    compiled += 1
                    print(f"{md}:{first}: compiles")
                else:
                    failed += 1
                    print(f"{md}:{first}: the ```cpp block starting here does not compile:")
                    print(out.rstrip())

    print(f"snippets: {compiled} compiled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""The README shows deploy/'s files exactly as they are: every fenced block of README.md whose
first line is `# deploy/NAME...` must equal the file deploy/NAME, and every file in deploy/
must be shown so, once.

usage: check_deploy.py README.md DEPLOY_DIR
"""
import os
import re
import sys
import unittest

README = DEPLOY = None


def blocks(text):
    """The fenced blocks of a Markdown text: (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)


class DeployFilesInReadme(unittest.TestCase):
    def test_each_file_is_shown_as_it_is(self):
        with open(README) as f:
            shown = {}
            for lang, body in blocks(f.read()):
                m = re.match(r"# (deploy/[^\s:]+)", body)
                if m:
                    self.assertNotIn(m.group(1), shown, f"{m.group(1)} is shown twice")
                    shown[m.group(1)] = body
        files = sorted(os.listdir(DEPLOY))
        self.assertTrue(files)
        for name in files:
            with self.subTest(name):
                self.assertIn(f"deploy/{name}", shown, "not shown in the README")
                with open(os.path.join(DEPLOY, name)) as f:
                    self.assertEqual(shown[f"deploy/{name}"], f.read(),
                                     f"README.md's block differs from deploy/{name}")
        self.assertEqual(sorted(shown), [f"deploy/{n}" for n in files],
                         "the README shows a deploy/ file that does not exist")


if __name__ == "__main__":
    README, DEPLOY = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)

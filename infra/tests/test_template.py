"""template.yaml is what operators deploy: cfn-lint must find nothing in it,
and the check must be able to fail."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def lint(path):
    return subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=120)


def test_the_template_is_cfn_lint_clean():
    done = lint(ROOT / "template.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text((ROOT / "template.yaml").read_text().replace("MemorySize: 256", "MemorySize: 99999999"))
    done = lint(broken)
    assert done.returncode != 0 and "E3034" in done.stdout, done.stdout

"""Translates template.yaml with samtranslator and runs cfn-lint on the result.

cfn-lint 1.x no longer looks inside SAM resources, so a wrong !GetAtt in an SQS
event, a MaximumConcurrency below 2 or a bad runtime pass `cfn-lint template.yaml`
and `sam validate --lint`; in the translated CloudFormation they do not.
Run with the tools environment: `.venv-tools/bin/python .ci/lint_translated_template.py`.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
_LOCAL_PATHS = ("CodeUri", "ContentUri")


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def translated(template_path: Path) -> dict[str, Any]:
    template = yaml_parse(template_path.read_text())
    # `sam build` replaces local code paths with S3 locations; the translator insists on them.
    for resource in template["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in _LOCAL_PATHS:
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://translation-only/{properties[key].strip('/')}.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return result


def main() -> int:
    document = translated(ROOT / "template.yaml")
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "translated.json"
        output.write_text(json.dumps(document, indent=1))
        # W1020: the translator itself resolves parameter defaults inside !Sub, leaving Subs without variables.
        lint = subprocess.run(  # noqa: S603
            [str(Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", "W1020", "--", str(output)], check=False
        )
    print(f"translated template: {len(document['Resources'])} resources, cfn-lint exit {lint.returncode}")
    return lint.returncode


if __name__ == "__main__":
    sys.exit(main())

"""template.yaml as a deploy creates it: AWS's own SAM translator (aws-sam-translator, the library
inside `sam build` / `sam deploy`, pinned by scripts/lib.sh) turns it into plain CloudFormation,
including the API's OpenAPI body with each route's integration. The local stack and the template
tests read this output, not a second reading of the SAM source.

usage: translate.py TEMPLATE_YAML OUTPUT_JSON
"""

import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    """The template names managed policies by ARN only; nothing needs looking up in IAM."""

    def load(self):
        return {}


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # `sam deploy` replaces each local CodeUri with the S3 object it uploaded.
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://local-artifacts/{logical_id}.zip"
    out = transform(template, {}, NoManagedPolicies())
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

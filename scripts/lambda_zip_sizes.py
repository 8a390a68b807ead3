"""Zips each built function (target/lambda/<f>/bootstrap) as Lambda's deployment artifact and
prints the sizes. Usage: python3 scripts/lambda_zip_sizes.py health webhook ..."""
import os
import sys
import zipfile

for name in sys.argv[1:]:
    d = os.path.join("target", "lambda", name)
    binary = os.path.join(d, "bootstrap")
    archive = os.path.join(d, "bootstrap.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(binary, "rb") as f:
            z.writestr(info, f.read())
    print(f"| {name} | {os.path.getsize(binary) / 1e6:.2f} MB | {os.path.getsize(archive) / 1e6:.2f} MB |")

"""After `make lambda-build` (sam build): checks that each function of template.yaml has its
deployment artifact, .aws-sam/build/<LogicalId>/bootstrap, as Lambda's provided.al2023 arm64
runtime needs it (a regular file with its run bit, an ELF64 little-endian AArch64 executable),
then prints its size and its zipped size (what `sam deploy` uploads) as a Markdown table, also
appended to $GITHUB_STEP_SUMMARY when set. Exits 1 if any artifact is missing or wrong.

usage: python3 scripts/lambda_zip_sizes.py [BUILD_DIR]   (default .aws-sam/build)
"""
import io
import os
import re
import stat
import struct
import sys
import zipfile

EM_AARCH64 = 183
ET_EXEC, ET_DYN = 2, 3


def functions(template_path):
    """Logical ids of the template's AWS::Serverless::Function resources (top-level, 2-space indent)."""
    ids, current = [], None
    with open(template_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
            if m:
                current = m.group(1)
            elif current and re.match(r"^    Type:\s*AWS::Serverless::Function\s*$", line):
                ids.append(current)
    return ids


def check(path):
    """Problems with the bootstrap at path (empty when it is fit for Lambda arm64)."""
    if not os.path.isfile(path):
        return ["missing"]
    problems = []
    mode = os.stat(path).st_mode
    if mode & 0o555 != 0o555:
        problems.append(f"mode {stat.filemode(mode)}: Lambda needs r-x for all (else Runtime.InvalidEntrypoint)")
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return problems + ["not an ELF file"]
    if header[4] != 2 or header[5] != 1:
        problems.append("not a 64-bit little-endian ELF")
    e_type, e_machine = struct.unpack_from("<HH", header, 16)
    if e_type not in (ET_EXEC, ET_DYN):
        problems.append(f"ELF type {e_type} is not an executable")
    if e_machine != EM_AARCH64:
        problems.append(f"ELF machine {e_machine}, not AArch64 ({EM_AARCH64}): the template's functions are arm64")
    return problems


def zipped_size(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            z.writestr(info, f.read())
    return len(buf.getvalue())


def main():
    build_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(".aws-sam", "build")
    ids = functions("template.yaml")
    if not ids:
        sys.exit("template.yaml declares no AWS::Serverless::Function")
    rows = ["| function | bootstrap (arm64) | zipped |", "|---|---|---|"]
    failed = False
    for fn in ids:
        path = os.path.join(build_dir, fn, "bootstrap")
        problems = check(path)
        if problems:
            failed = True
            print(f"{path}: " + "; ".join(problems), file=sys.stderr)
            continue
        rows.append(f"| {fn} | {os.path.getsize(path) / 1e6:.2f} MB | {zipped_size(path) / 1e6:.2f} MB |")
    table = "\n".join(rows)
    print(table)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write("### Lambda artifacts (sam build)\n\n" + table + "\n")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

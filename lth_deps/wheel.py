"""Write a platform wheel from files already built (no setuptools run): sorted entries, fixed timestamps, so the
same files give the same wheel bytes."""
import base64
import hashlib
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Dict, List

_EPOCH = (1980, 1, 1, 0, 0, 0)


def platform_tag() -> str:
    """``cp311-cp311-linux_x86_64`` for the running interpreter (the compiled module is built for it)."""
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{py}-{py}-{plat}"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(wheel_dir: Path, dist: str, version: str, files: Dict[str, Path], requires: List[str],
                summary: str, license_file: Path = None) -> Path:
    """Write ``<dist>-<version>-<tag>.whl`` into `wheel_dir` holding `files` (archive name -> file on disk)."""
    name = dist.replace("-", "_")
    info = f"{name}-{version}.dist-info"
    tag = platform_tag()
    meta = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}", f"Summary: {summary}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    top = sorted({a.split("/", 1)[0] if "/" in a else a.split(".", 1)[0] for a in files} - {name + ".libs"})
    generated = {
        f"{info}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: lth-plugins\nRoot-Is-Purelib: false\nTag: {tag}\n").encode(),
        f"{info}/top_level.txt": ("\n".join(top) + "\n").encode(),
    }
    if license_file is not None:
        generated[f"{info}/LICENSE"] = Path(license_file).read_bytes()
    path = Path(wheel_dir) / f"{name}-{version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [(a, Path(p).read_bytes(), 0o755 if Path(p).suffix == ".so" or ".so." in Path(p).name else 0o644)
                   for a, p in sorted(files.items())]
        entries += [(a, data, 0o644) for a, data in sorted(generated.items())]
        for arcname, data, mode in entries:
            zi = zipfile.ZipInfo(arcname, _EPOCH)
            zi.external_attr = (0o100000 | mode) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
            record.append(f"{arcname},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zi = zipfile.ZipInfo(f"{info}/RECORD", _EPOCH)
        zi.external_attr = (0o100644) << 16
        zi.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(zi, "\n".join(record) + "\n")
    return path

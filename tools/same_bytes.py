"""Same-bytes check for refactors: a fixed set of small encodes and decodes, and the md5 of what they write.

A behaviour-preserving change must give the same bitstreams and the same decoded frames for the same commands.
This tool runs a fixed set of CLI encodes (both pipelines, two sizes each, ``--target-bpp`` once; one thread,
seed 0, CPU) on a synthetic clip it writes itself (no dependency on the checkout's own sample code), decodes
each stream, and records the md5 of every bitstream and decoded file plus the encode's own JSON report.

    python tools/same_bytes.py run --checkout DIR -o before.json     # DIR/.venv/bin/python, cwd DIR
    python tools/same_bytes.py compare before.json after.json        # exit 1 on any difference

Run it on the commit before a refactor and on the refactor, then compare. Where bytes differ, ``compare`` also
prints the bpp and PSNR of both sides so a float-order change can be judged (the issue's 0.1 % rule).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FRAMES = 96, 64, 8

#: (name, extra encode arguments); every encode also gets --device cpu --seed 0 --json.
CASES: list[tuple[str, list[str]]] = [
    (
        "paper-xs",
        ["--pipeline", "paper", "--bits", "6", "--size", "xs", "--schedule", "short", "--epochs", "4"],
    ),
    (
        "paper-s",
        ["--pipeline", "paper", "--bits", "8", "--size", "s", "--schedule", "short", "--epochs", "4"],
    ),
    ("rd-s", ["--pipeline", "rd", "--size", "s", "--schedule", "short", "--epochs", "4"]),
    (
        "rd-m-mse",
        ["--pipeline", "rd", "--size", "m", "--schedule", "short", "--epochs", "4", "--distortion", "mse"],
    ),
    (
        "rd-s-target",
        ["--pipeline", "rd", "--size", "s", "--schedule", "short", "--epochs", "4", "--target-bpp", "0.4"],
    ),
]


def write_clip(path: Path) -> None:
    """A deterministic 4:2:0 8-bit y4m: smooth gradients and a moving disc, built with numpy only."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    out = [f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F25:1 Ip A1:1 C420jpeg\n".encode()]
    for t in range(FRAMES):
        cx, cy = 20 + 6 * t, 30 + 2 * np.sin(t)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < 12**2
        y = 40 + 120 * (xx / WIDTH) + 60 * np.sin(yy / 9 + t / 3) + 50 * disc
        u = 128 + 40 * np.cos(xx[::2, ::2] / 13 + t / 4)
        v = 128 + 40 * np.sin(yy[::2, ::2] / 11 - t / 5)
        out.append(b"FRAME\n")
        for plane in (y, u, v):
            out.append(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    path.write_bytes(b"".join(out))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _hinerv(python: str, cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([python, "-m", "hinerv", *args], cwd=cwd, env=env, capture_output=True, text=True)


def run(checkout: Path, out: Path, only: list[str] | None) -> int:
    python = str(checkout / ".venv" / "bin" / "python")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=checkout,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    rows: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="same-bytes-") as tmp:
        work = Path(tmp)
        clip = work / "clip.y4m"
        write_clip(clip)
        for name, extra in CASES:
            if only and name not in only:
                continue
            stream, rec = work / f"{name}.bin", work / f"{name}.y4m"
            t0 = time.perf_counter()
            enc = _hinerv(
                python,
                checkout,
                ["encode", str(clip), "-o", str(stream), "--device", "cpu", "--seed", "0", "--json", *extra],
            )
            t1 = time.perf_counter()
            row: dict[str, object] = {
                "args": extra,
                "encode_rc": enc.returncode,
                "encode_s": round(t1 - t0, 1),
            }
            if enc.returncode != 0:
                row["error"] = (enc.stderr or enc.stdout).strip().splitlines()[-1:]
            else:
                try:
                    row["report"] = json.loads(enc.stdout[enc.stdout.index("{") :])
                except ValueError:
                    row["report"] = None
                dec = _hinerv(python, checkout, ["decode", str(stream), "-o", str(rec), "--device", "cpu"])
                row["decode_rc"] = dec.returncode
                row["stream_md5"] = _md5(stream)
                row["stream_bytes"] = stream.stat().st_size
                if dec.returncode == 0:
                    row["decoded_md5"] = _md5(rec)
            rows[name] = row
            print(
                f"{name:12s} rc={row['encode_rc']} {row.get('stream_md5', '-')} "
                f"{row.get('decoded_md5', '-')} "
                f"{row['encode_s']:.1f}s",
                flush=True,
            )
    out.write_text(
        json.dumps(
            {
                "checkout": str(checkout),
                "commit": commit,
                "dirty": dirty,
                "clip": [WIDTH, HEIGHT, FRAMES],
                "cases": rows,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


def _metric(report: object, *keys: str) -> float | None:
    if not isinstance(report, dict):
        return None
    for k in keys:
        for scope in (report, report.get("metrics", {}) if isinstance(report.get("metrics"), dict) else {}):
            if k in scope and isinstance(scope[k], (int, float)):
                return float(scope[k])
    return None


def compare(a: Path, b: Path) -> int:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    print(
        f"A: {da['commit'][:10]}{' (dirty)' if da['dirty'] else ''}   B: {db['commit'][:10]}"
        f"{' (dirty)' if db['dirty'] else ''}"
    )
    bad = 0
    for name in sorted(set(da["cases"]) | set(db["cases"])):
        ra, rb = da["cases"].get(name), db["cases"].get(name)
        if ra is None or rb is None:
            print(f"{name:12s} only in {'B' if ra is None else 'A'}")
            bad += 1
            continue
        same = all(ra.get(k) == rb.get(k) for k in ("encode_rc", "stream_md5", "decoded_md5"))
        verdict = "same" if same else "DIFFERENT"
        line = f"{name:12s} {verdict}  bytes {ra.get('stream_bytes')} / {rb.get('stream_bytes')}"
        if not same:
            bad += 1
            for key in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
                va, vb = _metric(ra.get("report"), key), _metric(rb.get("report"), key)
                if va is not None and vb is not None:
                    line += f"  {key} {va:.5f} / {vb:.5f} ({(vb - va) / abs(va) * 100 if va else 0:+.3f} %)"
        print(line)
    print("all same" if bad == 0 else f"{bad} case(s) differ")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="encode + decode the fixed set with DIR's venv")
    r.add_argument("--checkout", type=Path, default=Path.cwd())
    r.add_argument("-o", "--out", type=Path, required=True)
    r.add_argument("--only", nargs="*", help="case names to run (default: all)")
    c = sub.add_parser("compare", help="diff two run JSONs")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    ns = p.parse_args(argv)
    if ns.cmd == "run":
        return run(ns.checkout.resolve(), ns.out, ns.only)
    return compare(ns.a, ns.b)


if __name__ == "__main__":
    sys.exit(main())

"""Cold start of every Lambda function: import-and-init time of its handler module in a fresh
interpreter (median of N runs) against a bare FastAPI + Mangum hello world measured in the same run,
plus each function's unzipped package size from `osls package`.

    .venv/bin/python bench/cold_start.py [--runs 15] [--stage prod] [--importtime FUNCTION]

Targets: HTTP functions <= 1.5x the baseline, drain, indexer and migrate <= 2x, and every function zip
<= 50 MB unzipped, judged on the zip `osls package` builds. The dependency layers are reported
separately (the "+layers MB" column and `layers_bytes`, when build/layers/ exists: infra/build_layers.sh)
and do not count towards the target. Deployment and the measured numbers: docs/DEPLOY.md.
Init must not connect to the database, so DATABASE_URL points at a closed port. The last line of
output is one JSON object. `--importtime F` prints the slowest imports of F (python -X importtime).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HTTP = ["auth", "generate", "memory", "media", "workers"]
TASKS = ["drain", "indexer", "migrate"]
TARGET = {**dict.fromkeys(HTTP, 1.5), "drain": 2.0, "indexer": 2.0, "migrate": 2.0}
LAYERS = {name: ["core"] if name in ("auth", "migrate") else ["core", "ai"] for name in HTTP + TASKS}
PACKAGED = ("serverless.yml", "package.json", "functions", "shared", "configs", "migrations")

BASELINE = """
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/")
def hello() -> dict:
    return {"hello": "world"}


handler = Mangum(app, lifespan="off")
"""

PROBE = """
import importlib, sys, time
t0 = time.perf_counter()
module = importlib.import_module(sys.argv[1])
assert callable(module.handler)
print((time.perf_counter() - t0) * 1000.0)
"""


def bench_env(workdir: Path) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABASE", "SECRET_IDS"))}
    env.update(
        PYTHONPATH=f"{workdir}{os.pathsep}{ROOT}",
        PYTHONDONTWRITEBYTECODE="0",
        HYBRID_ENV="dev",
        HYBRID_LOCAL_DIR=str(workdir / "local"),
        # nothing listens there: init must not connect
        DATABASE_URL="postgresql://hybrid:unused@127.0.0.1:9/hybrid",
        DB_POOL_SIZE="1",
        TELEGRAM_BOT_TOKEN="1234567890:bench-token-not-a-real-one-abcdefghijk",
        JWT_PRIVATE_KEY=pem,
        JWT_ISSUER="https://abc123.execute-api.eu-central-1.amazonaws.com",
        AWS_DEFAULT_REGION="eu-central-1",
        POWERTOOLS_SERVICE_NAME="hybrid",
        POWERTOOLS_METRICS_NAMESPACE="Hybrid",
        MEDIA_STORAGE="s3",
        MEDIA_BUCKET="hybrid-bench-media",
        MEDIA_CDN_BASE_URL="https://d111111abcdef8.cloudfront.net",
    )
    return env


def time_imports(modules: list[str], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Round-robin over the modules so that machine noise falls on all of them alike."""
    for module in modules:  # compile .pyc files first: a deployed package ships them warm
        subprocess.run([PYTHON, "-c", f"import {module}"], env=env, check=True, capture_output=True)
    samples: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(runs):
        for module in modules:
            out = subprocess.run(
                [PYTHON, "-c", PROBE, module], env=env, check=True, capture_output=True, text=True
            ).stdout
            samples[module].append(float(out.strip().splitlines()[-1]))
    return samples


def importtime(module: str, env: dict[str, str], top: int = 15) -> list[tuple[int, int, str]]:
    err = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {module}"], env=env, capture_output=True, text=True
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = (p.strip() for p in line.removeprefix("import time:").split("|"))
        rows.append((int(self_us), int(cumulative), name))
    return sorted(rows, key=lambda r: -r[1])[:top]


def package_sizes(stage: str) -> dict[str, int]:
    osls = ROOT / "node_modules" / ".bin" / "osls"
    with tempfile.TemporaryDirectory(prefix="cold-start-pkg-") as tmp:
        work = Path(tmp)
        for name in PACKAGED:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, work / name)
        (work / "node_modules").symlink_to(ROOT / "node_modules")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"HOME": tmp}
        subprocess.run(
            [str(osls), "package", "--stage", stage], cwd=work, env=env, check=True, capture_output=True
        )
        sizes = {}
        for zip_path in sorted((work / ".serverless").glob("*.zip")):
            with zipfile.ZipFile(zip_path) as zf:
                sizes[zip_path.stem] = sum(i.file_size for i in zf.infolist())
    return sizes


def layer_sizes() -> dict[str, int]:
    sizes = {}
    for layer in ("core", "ai"):
        folder = ROOT / "build" / "layers" / layer
        if folder.is_dir():
            sizes[layer] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description="cold start of every Lambda function")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--importtime", metavar="FUNCTION", help="print the slowest imports of one function")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        work = Path(tmp)
        (work / "baseline_hello.py").write_text(BASELINE)
        env = bench_env(work)
        if args.importtime:
            for self_us, cum_us, name in importtime(f"functions.{args.importtime}.handler", env):
                print(f"{cum_us / 1000:8.1f} ms cumulative {self_us / 1000:7.1f} ms self  {name}")
        modules = ["baseline_hello"] + [f"functions.{name}.handler" for name in HTTP + TASKS]
        samples = time_imports(modules, env, args.runs)
        baseline = statistics.median(samples["baseline_hello"])
        medians = {name: statistics.median(samples[f"functions.{name}.handler"]) for name in HTTP + TASKS}

    sizes = package_sizes(args.stage)
    layers = layer_sizes()
    print(f"baseline (FastAPI + Mangum hello world): {baseline:.1f} ms  runs={args.runs}")
    print(f"{'function':10} {'init ms':>8} {'x base':>7} {'target':>7} {'zip MB':>7} {'+layers MB':>10}  ok")
    rows, all_ok = {}, True
    for name in HTTP + TASKS:
        ratio = medians[name] / baseline
        pkg = sizes.get(name, 0)
        total = pkg + sum(layers.get(layer, 0) for layer in LAYERS[name])
        ok = ratio <= TARGET[name] and pkg <= 50 * 1024 * 1024  # the function package, as osls builds it
        all_ok &= ok
        rows[name] = {
            "init_ms": round(medians[name], 1),
            "ratio": round(ratio, 2),
            "target": TARGET[name],
            "package_bytes": pkg,
            "with_layers_bytes": total if layers else None,
            "ok": ok,
        }
        with_layers = f"{total / 2**20:10.1f}" if layers else f"{'(unbuilt)':>10}"
        print(
            f"{name:10} {medians[name]:8.1f} {ratio:7.2f} {TARGET[name]:7.1f} {pkg / 2**20:7.2f} "
            f"{with_layers}  {'yes' if ok else 'NO'}"
        )
    if layers:
        print("layers: " + ", ".join(f"{k} {v / 2**20:.1f} MB" for k, v in layers.items()))
    print(
        json.dumps(
            {
                "baseline_ms": round(baseline, 1),
                "runs": args.runs,
                "functions": rows,
                "layers_bytes": layers,
                "all_within_targets": all_ok,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

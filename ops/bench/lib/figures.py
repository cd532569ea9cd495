#!/usr/bin/env python3
"""The figures files of ops/bench (BENCH_JSON=path), and what ops/bench/all, compare and noise
share about them. Standard library only.

One benchmark's file:
  {"bench": NAME, "commit": short sha, "dirty": bool, "at": RFC 3339, "settings": {...},
   "complete": bool, "figures": [{"name", "value", "unit", "kind", "better"}, ...]}
kind: throughput | latency | ratio | memory | time; better: higher | lower. A ratio is a figure
divided by its baseline measured in the same run. "complete" is false when the script failed
part-way: the figures are those it had.

ops/bench/all's file: {"commit", "dirty", "at", "machine": {nproc, memory_mib, kernel,
  loadavg_before}, "sizes": {NAME: {KEY: VALUE}}, "build_seconds",
  "benches": {NAME: one benchmark's file, plus "status" and "seconds" (exit status, wall time)}}

  figures.py write --bench NAME --figures TSV --status N --out PATH -- KEY=VALUE...
      TSV: one figure a line, name<TAB>value<TAB>unit<TAB>kind[<TAB>better] (what
      ops/bench/lib/figures.sh and the Rust bench binaries append); a value that is not a
      number ("-": not measured) leaves the figure out and names it under "missing".
  figures.py merge --out PATH [--sizes JSON] [--build-seconds S] [--loadavg "A B C"] NAME=STATUS:SECONDS:FILE...
"""

import argparse
import datetime
import json
import math
import os
import subprocess
import sys

KINDS = ("throughput", "latency", "ratio", "memory", "time")
BETTER_BY_KIND = {"throughput": "higher", "ratio": "higher", "latency": "lower", "memory": "lower", "time": "lower"}
ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def commit():
    return git("rev-parse", "--short", "HEAD") or "unknown"


def dirty():
    """Whether tracked files differ from the commit (the figures are then not the commit's alone)."""
    status = git("status", "--porcelain", "--untracked-files=no")
    return bool(status) if status is not None else None


def now():
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def number(text):
    """A setting's value: a number when it reads as one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_tsv(path):
    figures, missing = [], []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4 or not parts[0]:
                continue
            name, value, unit, kind = parts[:4]
            better = parts[4] if len(parts) > 4 and parts[4] else BETTER_BY_KIND.get(kind)
            if kind not in KINDS or better not in ("higher", "lower"):
                raise SystemExit(f"figures: {name}: kind {kind!r} / better {better!r} unknown")
            try:
                value = float(value)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                missing.append(name)
                continue
            value = float(f"{value:.6g}")  # no run measures finer than that
            figures.append({"name": name, "value": value, "unit": unit, "kind": kind, "better": better})
    return figures, missing


def write(args):
    figures, missing = read_tsv(args.figures)
    settings = {}
    for pair in args.settings:
        key, _, value = pair.partition("=")
        settings[key] = number(value)
    doc = {
        "bench": args.bench,
        "commit": commit(),
        "dirty": dirty(),
        "at": now(),
        "settings": settings,
        "complete": args.status == 0,
        "figures": figures,
    }
    if missing:
        doc["missing"] = missing
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1)
        out.write("\n")
    print(f"[bench] {len(figures)} figures of {args.bench} written to {args.out}", file=sys.stderr)


def meminfo_mib():
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return None


def merge(args):
    benches = {}
    for item in args.benches:
        name, _, rest = item.partition("=")
        status, seconds, path = rest.split(":", 2)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {"bench": name, "figures": [], "complete": False}
        doc["status"] = int(status)
        doc["seconds"] = float(seconds)
        benches[name] = doc
    doc = {
        "commit": commit(),
        "dirty": dirty(),
        "at": now(),
        "machine": {
            "nproc": os.cpu_count(),
            "memory_mib": meminfo_mib(),
            "kernel": os.uname().release,
            "loadavg_before": args.loadavg,
        },
        "sizes": {n: {k: number(str(v)) for k, v in kv.items()} for n, kv in json.loads(args.sizes).items()},
        "build_seconds": args.build_seconds,
        "benches": benches,
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1)
        out.write("\n")


def load(path):
    """Either kind of file as (document, {"bench/figure": figure}) in the files' order."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    benches = doc["benches"] if "benches" in doc else {doc["bench"]: doc}
    figures = {}
    for bench, one in benches.items():
        for figure in one.get("figures", []):
            figures[f"{bench}/{figure['name']}"] = figure
    return doc, figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--bench", required=True)
    w.add_argument("--figures", required=True)
    w.add_argument("--status", type=int, default=0)
    w.add_argument("--out", required=True)
    w.add_argument("settings", nargs="*")
    m = sub.add_parser("merge")
    m.add_argument("--out", required=True)
    m.add_argument("--sizes", default="{}")
    m.add_argument("--build-seconds", type=float)
    m.add_argument("--loadavg")
    m.add_argument("benches", nargs="*")
    args = parser.parse_args()
    {"write": write, "merge": merge}[args.command](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Render a classification report (the JSON of scripts/evaluate.py or a training metrics file) as
Markdown tables for the model card: summary line, per-class recall, confusion matrix.

    python scripts/evaluate.py face --npz X.npz | tail -1 > face.json
    python scripts/report_tables.py face.json
    python scripts/report_tables.py models_tflite/face_expression_metrics.json --key int8.ferplus_publictest
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.labels import LABELS  # noqa: E402


def markdown(report: dict) -> str:
    lines = [f"n = {report['n']}, accuracy **{report['accuracy']:.3f}**, "
             f"balanced accuracy **{report['balanced_accuracy']:.3f}**", ""]
    lines.append("| true \\ predicted | " + " | ".join(LABELS) + " | recall |")
    lines.append("|---" * (len(LABELS) + 2) + "|")
    recall = report["per_class_recall"]
    for name, row in zip(LABELS, report["confusion"], strict=True):
        r = recall.get(name)
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + f" | {'-' if r is None else f'{r:.2f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="JSON file (a report, or a metrics file with --key)")
    p.add_argument("--key", default="", help="dotted path to the report inside the file, e.g. int8.clean")
    args = p.parse_args(argv)
    text = Path(args.file).read_text().strip().splitlines()
    report = json.loads(text[-1]) if len(text) > 1 and text[-1].startswith("{") else json.loads("\n".join(text))
    for part in filter(None, args.key.split(".")):
        report = report[part]
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

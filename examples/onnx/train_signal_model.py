#!/usr/bin/env python3
"""Train the example `onnx` signal model: scikit-learn logistic regression on the features
that `examples/export_features.rs` dumps, exported to ONNX for kraken-paper's `onnx` signal
(`--features onnx`; docs/signals.md, section "onnx").

Run it with:

    python3 -m venv .venv && .venv/bin/pip install scikit-learn skl2onnx onnx onnxruntime
    cargo run --release --example export_features -- --sim --seed 7 --duration 48h --out features.csv
    .venv/bin/python examples/onnx/train_signal_model.py features.csv

It writes examples/onnx/signal_model.onnx and examples/onnx/signal_model_vectors.json (a few
feature vectors with the probabilities scikit-learn and onnxruntime computed for them; the
Rust tests check that tract reproduces them).

The committed model was made with Python 3.11.7, numpy 2.4.6, scikit-learn 1.9.1,
skl2onnx 1.20.0, onnx 1.23.2 and onnxruntime 1.32.0, from
`export_features -- --sim --seed 7 --duration 48h` (default config: BTC/USD, ETH/USD,
SOL/USD; signals.onnx defaults: 10 s grid, lags [1, 6, 30], vol_samples 30, horizon 1m).

The model contract (what the Rust side checks when it loads the file):
  input   one float tensor [N, F] named "features", F = number of feature columns, in the
          CSV's column order (which is the signal's vector order);
  output  "probabilities" [N, 2], column 1 = P(label 1) = P(mid higher after the horizon).
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
import skl2onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

HERE = Path(__file__).resolve().parent
META = ("pair", "time_us", "mid", "n")


def read_csv(path):
    """Rows of the export: returns (feature names, pairs, times, n, X, y)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if tuple(header[: len(META)]) != META or header[-1] != "label":
            sys.exit(f"{path}: not an export_features CSV (header {header})")
        names = header[len(META) : -1]
        pairs, times, ns, xs, ys = [], [], [], [], []
        for row in reader:
            pairs.append(row[0])
            times.append(int(row[1]))
            ns.append(int(row[3]))
            xs.append([float(v) for v in row[len(META) : -1]])
            ys.append(int(row[-1]))
    return names, pairs, np.array(times), np.array(ns), np.array(xs), np.array(ys)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="output of examples/export_features.rs")
    ap.add_argument("--out", default=str(HERE / "signal_model.onnx"))
    ap.add_argument("--vectors", default=str(HERE / "signal_model_vectors.json"))
    ap.add_argument("--skip", type=int, default=100,
                    help="drop each pair's first N vectors (the running standardisation settling; "
                         "match signals.onnx.warmup)")
    ap.add_argument("--test-fraction", type=float, default=0.25,
                    help="the latest part of the data, by time, held out for the report")
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 strength")
    args = ap.parse_args()

    names, _pairs, times, ns, X, y = read_csv(args.csv)
    keep = ns > args.skip
    times, X, y = times[keep], X[keep], y[keep]
    if len(y) < 100 or len(set(y)) < 2:
        sys.exit(f"only {len(y)} usable rows (labels {sorted(set(y))}); export more data")

    # Walk-forward split: train on the earlier part, report on the later one.
    cut = np.quantile(times, 1.0 - args.test_fraction)
    train, test = times < cut, times >= cut
    clf = LogisticRegression(C=args.C, max_iter=1000)
    clf.fit(X[train], y[train])
    assert list(clf.classes_) == [0, 1], clf.classes_
    p_test = clf.predict_proba(X[test])[:, 1]
    print(f"{len(y)} rows ({train.sum()} train, {test.sum()} test), {len(names)} features: {', '.join(names)}")
    print(f"test: accuracy {np.mean((p_test > 0.5) == y[test]):.4f}  base rate {y[test].mean():.4f}  "
          f"AUC {roc_auc_score(y[test], p_test):.4f}  log-loss {log_loss(y[test], p_test):.4f}")
    conf = np.abs(2 * p_test - 1)
    print("test: |2p-1| (the signal's confidence; pick signals.onnx.min_confidence from it) "
          + ", ".join(f"p{q} {np.quantile(conf, q / 100):.4f}" for q in (50, 90, 99)))
    print("weights: " + ", ".join(f"{n} {w:+.4f}" for n, w in zip(names, clf.coef_[0])) +
          f", intercept {clf.intercept_[0]:+.4f}")

    # Refit on everything for the shipped model.
    clf.fit(X, y)
    model = to_onnx(
        clf,
        initial_types=[("features", FloatTensorType([None, len(names)]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    model.doc_string = "kraken-paper onnx signal: P(mid up over the horizon) from the features " + ",".join(names)
    onnx.helper.set_model_props(model, {"kraken_paper.features": ",".join(names)})
    onnx.checker.check_model(model)
    Path(args.out).write_bytes(model.SerializeToString())

    # Reference vectors: a zero vector, the clip corners, and a few real rows.
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    picks = np.linspace(0, len(X) - 1, 6).astype(int)
    vectors = [np.zeros(len(names)), np.full(len(names), 5.0), np.full(len(names), -5.0)] + [X[i] for i in picks]
    records = []
    for x in vectors:
        x32 = np.asarray(x, dtype=np.float32).reshape(1, -1)
        p_ort = float(sess.run(["probabilities"], {"features": x32})[0][0, 1])
        p_skl = float(clf.predict_proba(x32.astype(np.float64))[0, 1])
        assert abs(p_ort - p_skl) < 1e-5, (p_ort, p_skl)
        records.append({"x": [float(v) for v in x32[0]], "p_up_onnxruntime": p_ort, "p_up_sklearn": p_skl})
    Path(args.vectors).write_text(json.dumps({
        "model": Path(args.out).name,
        "features": names,
        "input": "features",
        "outputs": out_names,
        "used_output": "probabilities[:, 1]",
        "versions": {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                     "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__},
        "vectors": records,
    }, indent=2) + "\n")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes) and {args.vectors}")


if __name__ == "__main__":
    main()

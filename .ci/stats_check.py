#!/usr/bin/env python3
"""report.json's statistics against empyrical-reloaded (run by .ci/stats-check).

  stats_check.py RUN_DIR:RF [RUN_DIR:RF ...]

For each run folder (after `kraken-paper export RUN_DIR --format csv`), RF being the annual
risk-free rate the run was configured with:
  - Sharpe, Sortino, annualised volatility and CAGR of returns.csv's `return` column, with
    annualization = stats.periods_per_year and the per-period risk-free rate
    (1 + rf)^(1/ppy) - 1 (Sortino's required return),
  - max drawdown of equity.csv's points with report.json's starting_equity first,
must equal report.json's figures to 1e-6 relative. Exits 1 on the first run that differs.
"""
import csv
import json
import math
import os
import sys

import empyrical as ep
import numpy as np

TOLERANCE = 1e-6


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rel(ours, theirs):
    if ours is None or theirs is None or not math.isfinite(theirs):
        return math.inf
    return abs(ours - theirs) / max(abs(theirs), 1e-300)


def check(run_dir, rf_configured):
    report = json.load(open(os.path.join(run_dir, "report.json")))
    stats = report["stats"]
    ppy = stats["periods_per_year"]
    rf = stats["risk_free_rate"]
    problems = []
    if rf != rf_configured:
        problems.append(f"stats.risk_free_rate is {rf}, the run was configured with {rf_configured}")
    if ppy != 365 * 86400 / stats["period_seconds"]:
        problems.append(f"periods_per_year {ppy} is not 365 days / period_seconds {stats['period_seconds']}")

    grid = rows(os.path.join(run_dir, "returns.csv"))
    returns = np.array([float(r["return"]) for r in grid if r["return"] != ""])
    if len(returns) != stats["returns"]:
        problems.append(f"returns.csv has {len(returns)} returns, stats.returns says {stats['returns']}")
    rf_period = (1 + rf) ** (1 / ppy) - 1
    equity = [float(report["starting_equity"])] + [
        float(r["equity"]) for r in rows(os.path.join(run_dir, "equity.csv"))
    ]
    curve = np.array(equity)
    figures = [
        ("sharpe", report["sharpe"], ep.sharpe_ratio(returns, risk_free=rf_period, annualization=ppy)),
        ("sortino", report["sortino"], ep.sortino_ratio(returns, required_return=rf_period, annualization=ppy)),
        ("annualised_volatility", stats["annualised_volatility"], ep.annual_volatility(returns, annualization=ppy)),
        ("cagr (annualised_return)", stats["annualised_return"], ep.cagr(returns, annualization=ppy)),
        ("max_drawdown", stats["max_drawdown"], -ep.max_drawdown(curve[1:] / curve[:-1] - 1)),
    ]
    print(f"{run_dir}: {stats['returns']} returns of {stats['period_seconds']} s, ppy {ppy:g}, rf {rf} "
          f"(per period {rf_period:.6e}), {len(equity)} equity points")
    worst = 0.0
    for name, ours, theirs in figures:
        d = rel(ours, float(theirs))
        worst = max(worst, d)
        flag = "ok" if d <= TOLERANCE else "DIFFERS"
        print(f"  {name:26} report {ours!r:24} empyrical {float(theirs)!r:24} rel diff {d:.2e} {flag}")
        if d > TOLERANCE:
            problems.append(f"{name}: report {ours} vs empyrical {theirs} (rel {d:.2e})")
    print(f"  largest relative difference {worst:.2e} (tolerance {TOLERANCE:g})")
    return problems


def main():
    failed = False
    for arg in sys.argv[1:]:
        run_dir, rf = arg.rsplit(":", 1)
        for p in check(run_dir, float(rf)):
            print(f"FAIL {run_dir}: {p}")
            failed = True
    if failed:
        sys.exit(1)
    print("stats-check: report.json agrees with empyrical-reloaded")


if __name__ == "__main__":
    main()

"""The trained router: question vector → kb section (or curated answer), with calibrated probabilities.

Training (at ingest, scikit-learn): e5 query vectors of the question bank, section headings and curated
phrasings, both languages pooled (e5 is multilingual, so an English bank question also teaches the Japanese
twin), standardised, multinomial logistic regression. Seeded and single-threaded, a few seconds.
Prediction (every question) is plain numpy over the persisted weights: no scikit-learn import on the query path.

Calibration: logistic regression on ~1,000 near-duplicate questions is over-confident (a research check here saw
0.9+ on wrong routes), so a temperature is fitted on the 5-fold cross-validated logits (minimum log-loss). The
router ranks; it never decides alone whether to answer — the refusal gate does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROUTER_VERSION = "logreg-v1"
# Inverse regularisation, chosen by 5-fold CV on the bank (1,815 questions, 2026-12-01): top-1 / top-3 at
# C=3: 0.743/0.914, 1: 0.747/0.920, 0.3: 0.755/0.927, 0.1: 0.759/0.931, 0.03: 0.762/0.938, 0.01: 0.754/0.937,
# 0.003: 0.703/0.919. CV alone favours 0.03, but end to end (the router's probabilities feed the section score
# and the curated choice) 0.3 did best: dev 167 / 166 / 167 and holdout 30 / 28 / 29 at C = 0.3 / 0.03 / 0.1.
DEFAULT_C = 0.3
CV_FOLDS = 5


class RouterMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class Router:
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (n_classes, dim)
    intercept: np.ndarray
    temperature: float
    embedder: str
    report: dict = field(default_factory=dict, compare=False, hash=False)

    def proba(self, qvec: np.ndarray) -> np.ndarray:
        z = ((qvec - self.mean) / self.scale) @ self.coef.T + self.intercept
        return _softmax(z / self.temperature)

    def ranked(self, qvec: np.ndarray, allowed=None) -> list[tuple[str, float]]:
        """(class, probability) best first; `allowed` restricts and renormalises (e.g. a topic filter)."""
        p = self.proba(qvec)
        pairs = [(c, float(p[i])) for i, c in enumerate(self.classes) if allowed is None or c in allowed]
        total = sum(x for _, x in pairs) or 1.0
        return sorted(((c, x / total) for c, x in pairs), key=lambda cp: -cp[1])

    def save(self, path: Path) -> None:
        np.savez(path.with_suffix(".npz"), mean=self.mean, scale=self.scale, coef=self.coef,
                 intercept=self.intercept)
        meta = {"version": ROUTER_VERSION, "classes": list(self.classes), "temperature": self.temperature,
                "embedder": self.embedder, "report": self.report}
        path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, embedder_spec: str) -> "Router":
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("embedder") != embedder_spec or meta.get("version") != ROUTER_VERSION:
            raise RouterMismatch(f"the router {path.name} was trained with embedder {meta.get('embedder')!r} "
                                 f"({meta.get('version')}), the query embedder is {embedder_spec!r} "
                                 f"({ROUTER_VERSION}); re-ingest with `bpo-assistant ingest --rebuild`")
        w = np.load(path.with_suffix(".npz"))
        return cls(tuple(meta["classes"]), w["mean"], w["scale"], w["coef"], w["intercept"],
                   float(meta["temperature"]), meta["embedder"], meta.get("report", {}))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def train(vectors: np.ndarray, labels: list[str], embedder_spec: str, C: float = DEFAULT_C, seed: int = 0,
          names: list[dict] | None = None, cv: bool = True) -> Router:
    """Fit the router; with `cv`, also the 5-fold report (accuracy, top-3, the bank questions routed elsewhere)
    and the temperature. `names[i]` describes example i for the report (question, path, line)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    started = time.monotonic()
    X = np.asarray(vectors, dtype=np.float64)
    y = np.asarray(labels)
    classes = tuple(sorted(set(labels)))
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    Xs = (X - mean) / scale

    def fit(a, b):
        return LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(a, b)

    report: dict = {"examples": len(labels), "classes": len(classes), "C": C}
    temperature = 1.0
    counts = {c: int((y == c).sum()) for c in classes}
    folds = min(CV_FOLDS, min(counts.values()))
    if cv and folds >= 2:
        logits = np.zeros((len(y), len(classes)))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(Xs, y):
            model = fit(Xs[tr], y[tr])
            cols = [classes.index(c) for c in model.classes_]
            logits[np.ix_(te, cols)] = _scores(model, Xs[te])
            missing = [i for i, c in enumerate(classes) if c not in model.classes_]
            logits[np.ix_(te, missing)] = -1e9
        temperature = _fit_temperature(logits, np.array([classes.index(c) for c in y]))
        p = _softmax(logits / temperature)
        order = np.argsort(-p, axis=1)
        truth = np.array([classes.index(c) for c in y])
        report.update(cv_folds=folds, cv_accuracy=round(float((order[:, 0] == truth).mean()), 4),
                      cv_top3=round(float((order[:, :3] == truth[:, None]).any(axis=1).mean()), 4),
                      temperature=round(temperature, 3))
        report["misroutes"] = [
            {**(names[i] if names else {}), "label": y[i], "routed_to": classes[order[i, 0]],
             "p": round(float(p[i, order[i, 0]]), 3)}
            for i in range(len(y)) if order[i, 0] != truth[i]
        ]
    final = fit(Xs, y)
    cols = [list(final.classes_).index(c) for c in classes]
    coef, intercept = final.coef_, final.intercept_
    if len(final.classes_) == 2:  # binary: one weight vector for class 1; softmax([0, z]) is the same sigmoid
        coef, intercept = np.vstack([np.zeros_like(coef[0]), coef[0]]), np.array([0.0, intercept[0]])
    report["train_seconds"] = round(time.monotonic() - started, 2)
    return Router(classes, mean.astype(np.float32), scale.astype(np.float32),
                  coef[cols].astype(np.float32), intercept[cols].astype(np.float32),
                  float(temperature), embedder_spec, report)


def _scores(model, X: np.ndarray) -> np.ndarray:
    z = model.decision_function(X)
    return np.column_stack([np.zeros_like(z), z]) if z.ndim == 1 else z


def _fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the log-loss of held-out predictions (a 1-D grid is enough and exact to 5 %)."""
    best, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 50)):
        p = _softmax(logits / t)
        loss = -np.mean(np.log(p[np.arange(len(truth)), truth] + 1e-12))
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best

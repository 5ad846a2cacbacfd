"""Out-of-scope scores other than the shipped one, on a model retrained without some intents
(docs/BENCHMARKS.md, "banking77 with 10 intents held out"): calibrated max probability, max logit,
energy, Mahalanobis and relative Mahalanobis on the mean-pooled embedding (the head's input),
cosine kNN and centroid scores and, given the BoW tier retrained the same way, scores combining
both tiers. Thresholds follow builder/evaluate/holdout.py: the highest losing <= 1 point of in-scope val accuracy.

    .venv/bin/python -m benchmarks.oos_scores TRANSFORMER_BUNDLE SPLITS [BOW_BUNDLE]

The bundles are `builder eval --holdout-intents N --holdout-out DIR` results; the held-out intents
are the test intents the bundle lacks. Runs the int8 graph on native onnxruntime (2 threads) with
the bundle's tokenizer.json through Hugging Face tokenizers (batched, so in-scope accuracy can differ
from `builder eval`'s by a few rows).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from builder.evaluate.oos import auroc, oos_metrics, threshold_for_loss

bundle, data = Path(sys.argv[1]), Path(sys.argv[2])
m = json.loads((bundle / "manifest.json").read_text())
spec = next(t for t in m["tiers"] if t["kind"] == "transformer")
labels = m["labels"]; T = spec["temperature"]
held = {json.loads(line)["intent"] for line in (data / "test.jsonl").open()} - set(labels)
print(f"held out: {', '.join(sorted(held))}")
model = onnx.load(str(bundle / spec["files"]["model"]["path"]))
out = model.graph.output[0].name
head = next(n for n in model.graph.node if out in n.output)
while head.op_type not in ("MatMul", "Gemm", "MatMulInteger"):
    head = next(n for n in model.graph.node if head.input[0] in n.output)
# walk back through DynamicQuantizeLinear to the float pooled vector
feat = head.input[0]
prod = next((n for n in model.graph.node if feat in n.output), None)
if prod is not None and prod.op_type == "DynamicQuantizeLinear":
    feat = prod.input[0]
print("head", head.op_type, "feature", feat)
model.graph.output.append(onnx.helper.make_tensor_value_info(feat, onnx.TensorProto.FLOAT, None))
so = ort.SessionOptions(); so.intra_op_num_threads = 2
sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
names = [i.name for i in sess.get_inputs()]
tok = Tokenizer.from_file(str(bundle / spec["files"]["tokenizer"]["path"]))
tok.enable_truncation(spec["max_length"]); tok.enable_padding()

def run(texts):
    L, F = [], []
    for i in range(0, len(texts), 64):
        enc = tok.encode_batch(texts[i:i + 64])
        feeds = {"input_ids": np.array([e.ids for e in enc], np.int64), "attention_mask": np.array([e.attention_mask for e in enc], np.int64)}
        if "token_type_ids" in names: feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        lo, fe = sess.run(None, {k: v for k, v in feeds.items() if k in names})
        L.append(lo); F.append(fe)
    return np.concatenate(L), np.concatenate(F)

def rows(split):
    r = [json.loads(l) for l in (data / f"{split}.jsonl").open()]
    return [x["text"] for x in r], [x["intent"] for x in r]

t0 = time.time()
tr_x, tr_y = rows("train"); va_x, va_y = rows("val"); te_x, te_y = rows("test")
keep = lambda xs, ys: [(x, y) for x, y in zip(xs, ys) if y not in held]
tr = keep(tr_x, tr_y); va = keep(va_x, va_y)
trL, trF = run([x for x, _ in tr]); vaL, vaF = run([x for x, _ in va]); teL, teF = run(te_x)
print(f"features in {time.time()-t0:.0f} s")
idx = {l: i for i, l in enumerate(labels)}
tr_t = np.array([idx[y] for _, y in tr]); va_t = np.array([idx[y] for _, y in va])
te_oos = np.array([y in held for y in te_y]); te_t = np.array([idx.get(y, -1) for y in te_y])

def softmax(z):
    z = z - z.max(1, keepdims=True); e = np.exp(z); return e / e.sum(1, keepdims=True)
# Mahalanobis: class means + shared covariance of train features
C = len(labels)
means = np.stack([trF[tr_t == c].mean(0) if (tr_t == c).any() else np.full(trF.shape[1], np.inf) for c in range(C)])
present = np.isfinite(means).all(1)
cen = trF - means[tr_t]
cov = cen.T @ cen / len(trF) + 1e-6 * np.eye(trF.shape[1]) ; P = np.linalg.inv(cov)
def maha(F):
    d = np.stack([np.einsum("ij,jk,ik->i", F - means[c], P, F - means[c]) if present[c] else np.full(len(F), np.inf) for c in range(C)], 1)
    return -d.min(1)
gmean = trF.mean(0); gcov = np.cov(trF.T) + 1e-6 * np.eye(trF.shape[1]); gP = np.linalg.inv(gcov)
def rel_maha(F):
    d0 = np.einsum("ij,jk,ik->i", F - gmean, gP, F - gmean)
    return maha(F) + d0
nrm = lambda F: F / np.linalg.norm(F, axis=1, keepdims=True)
trN = nrm(trF)
def knn(F, k):
    s = nrm(F) @ trN.T
    return np.sort(s, 1)[:, -k]
cent = nrm(np.where(present[:, None], means, 0))
def centroid_cos(F):
    return (nrm(F) @ cent.T).max(1)
scores = {
    "msp (calibrated)": lambda L, F: softmax(L / T).max(1),
    "max logit": lambda L, F: L.max(1),
    "energy (T)": lambda L, F: T * np.log(np.exp(L / T - (L / T).max(1, keepdims=True)).sum(1)) + L.max(1),
    "mahalanobis": lambda L, F: maha(F),
    "relative mahalanobis": lambda L, F: rel_maha(F),
    "knn cos k=1": lambda L, F: knn(F, 1),
    "knn cos k=10": lambda L, F: knn(F, 10),
    "centroid cos": lambda L, F: centroid_cos(F),
}
va_correct = vaL.argmax(1) == va_t; te_correct = teL.argmax(1) == te_t
print(f"in-scope test acc {te_correct[~te_oos].mean():.4f}")
for name, fn in scores.items():
    sv, st = fn(vaL, vaF), fn(teL, teF)
    th = threshold_for_loss(sv, va_correct, 0.01)
    r = oos_metrics(st, te_correct, te_oos, th)
    print(f"{name:22s} AUROC {auroc(st, ~te_oos):.4f}  recall {r['oos_recall']:.3f} precision {r['oos_precision']:.3f} loss {100*r['in_scope_accuracy_loss']:.2f} pt")

if len(sys.argv) > 3:
    from runtime_py.bow import BowModel
    bm = json.loads((Path(sys.argv[3]) / "manifest.json").read_text())
    bspec = next(t for t in bm["tiers"] if t["kind"] == "bow")
    bow = BowModel.load(Path(sys.argv[3]) / bspec["files"]["model"]["path"])
    assert bow.labels == labels, "label order differs"
    bva = np.array([bow.probabilities(x) for x, _ in va]); bte = np.array([bow.probabilities(x) for x in te_x])
    pva, pte = softmax(vaL / T), softmax(teL / T)
    print(f"BoW in-scope test acc {(bte.argmax(1) == te_t)[~te_oos].mean():.4f}")
    def combos(p, b):
        a = p.argmax(1); msp = p.max(1); pb = b[np.arange(len(a)), a]
        agree = a == b.argmax(1)
        return {
            "msp if agree else msp-1": np.where(agree, msp, msp - 1),
            "msp * p_bow(top)": msp * pb,
            "mean(msp, p_bow(top))": (msp + pb) / 2,
            "min(msp, p_bow(top))": np.minimum(msp, pb),
            "geo mean": np.sqrt(msp * pb),
        }
    cv, ct = combos(pva, bva), combos(pte, bte)
    for name in cv:
        th = threshold_for_loss(cv[name], va_correct, 0.01)
        r = oos_metrics(ct[name], te_correct, te_oos, th)
        print(f"{name:22s} AUROC {auroc(ct[name], ~te_oos):.4f}  recall {r['oos_recall']:.3f} precision {r['oos_precision']:.3f} loss {100*r['in_scope_accuracy_loss']:.2f} pt")
    # ensemble prediction: average of probabilities
    for w in (0.5, 0.7):
        ev, et = w * pva + (1 - w) * bva, w * pte + (1 - w) * bte
        evc, etc = ev.argmax(1) == va_t, et.argmax(1) == te_t
        th = threshold_for_loss(ev.max(1), evc, 0.01)
        r = oos_metrics(et.max(1), etc, te_oos, th)
        print(f"avg ensemble w={w}: acc {etc[~te_oos].mean():.4f} AUROC {auroc(et.max(1), ~te_oos):.4f} recall {r['oos_recall']:.3f} precision {r['oos_precision']:.3f} loss {100*r['in_scope_accuracy_loss']:.2f} pt")

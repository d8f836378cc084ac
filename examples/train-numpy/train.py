"""Trains a logistic regression with numpy (Debian's python3-numpy) and gives back the model.

Hyperparameters come from the run config (`liftoff launch --set lr=0.8 --set epochs=25`, read from LIFTOFF_RUN_CONFIG);
each epoch prints a LIFTOFF_METRICS line (charted on the run page); the weights and a summary go to
$LIFTOFF_OUTPUT_DIR, which the agent uploads after the run (`liftoff runs outputs RUN --download DIR`).
"""
import json, os
import numpy as np

config = json.loads(os.environ.get("LIFTOFF_RUN_CONFIG") or "{}")
lr, epochs = float(config.get("lr", 0.5)), int(config.get("epochs", 30))

def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 2))
    y = (x @ np.array([2.0, -1.0]) + 0.3 > 0).astype(float)
    return np.hstack([x, np.ones((400, 1))]), y

x, y = data()
w = np.zeros(3)
for epoch in range(epochs):
    p = 1 / (1 + np.exp(-(x @ w)))
    loss = float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
    w -= lr * x.T @ (p - y) / len(y)
    accuracy = float(np.mean(((x @ w) > 0) == (y > 0.5)))
    print("LIFTOFF_METRICS " + json.dumps({"step": epoch, "loss": loss, "accuracy": accuracy}), flush=True)
out = os.environ["LIFTOFF_OUTPUT_DIR"]
np.save(os.path.join(out, "model.npy"), w)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"accuracy": accuracy, "numpy": np.__version__}, f)
print("saved model with accuracy", accuracy, flush=True)

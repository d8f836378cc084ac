"""A stand-in for a training script: reads its run config and arguments, prints progress."""
import json
import os
import sys
import time

config = json.loads(os.environ.get("LIFTOFF_RUN_CONFIG", "{}"))
epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else int(config.get("epochs", 2))
print(f"run {os.environ.get('LIFTOFF_RUN_ID')} on queue {os.environ.get('LIFTOFF_QUEUE')} with config {config}", flush=True)
for epoch in range(1, epochs + 1):
    time.sleep(0.2)
    print(f"epoch {epoch}/{epochs} loss={1.0 / epoch:.3f}", flush=True)
print("done", flush=True)

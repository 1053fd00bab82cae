"""Where a trained model's online form lives: the files train logs with the
run, and the tags it sets on the registered version. One place, read by
train (which writes them) and by the server (which imports no Spark)."""

ARTIFACT_DIR = "online"
MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
# model-version (and run) tags: can `lakeforge serve` run it, and if not, why
SERVABLE = "lakeforge.servable"
ONLINE_REASON = "lakeforge.online_reason"

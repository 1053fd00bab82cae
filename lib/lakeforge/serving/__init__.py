"""Online scoring: the fitted PipelineModel as an ONNX graph (checked against
Spark on the test split at training), and the HTTP server that runs it
without Spark or a JVM."""

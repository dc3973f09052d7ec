"""Other engines for the models' networks: ONNX Runtime (:mod:`hear_mn.engines.ort`)."""

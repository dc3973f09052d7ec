"""EfficientAT's MobileNets and dynamic MobileNets (DyMN): the block table and feature taps
(torch-free), the networks, the log-mel frontend, the inference rewrites, the embedders and
their streams, the two families' checkpoints and names, and their ONNX graphs."""

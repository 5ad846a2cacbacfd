"""A trained transformer as the files a bundle ships: single-file ONNX, int8 variants proven safe on
every CPU, a pruned vocabulary and the WebGL graphs."""

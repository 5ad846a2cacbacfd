"""The build's steps, shared by `build`, `train`, `train-bow` and the held-out experiment: a tier
trained into a bundle, the default build, and retraining without some intents."""

"""Training the tiers on the splits: the BoW tier, the transformer model and its fine-tuning, the
metrics and temperature scaling both are calibrated with, and blending two tiers of a bundle."""

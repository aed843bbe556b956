"""Evaluation on frozen features: feature extraction and attentive probes."""
